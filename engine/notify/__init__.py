"""Notifications: a run's end and its tasks' failures sent to the channels of its document's
``notify:`` section (signed webhooks, Apprise URLs), retried, recorded in the run's log, and
never failing the run."""
