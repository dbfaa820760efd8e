"""The references of a document's ``notify:`` channels: only ``${vault.NAME}`` may appear in
one (a channel is not a task: it has no outputs, vars or items to read), and each must name a
stored secret."""

from __future__ import annotations

from urllib.parse import urlsplit

from multi_task_orchestrator.engine.document.examined import ExaminedDocument
from multi_task_orchestrator.engine.expressions import ExpressionError, find_references
from multi_task_orchestrator.engine.issues import Issue, did_you_mean


def check_notify(doc: ExaminedDocument) -> list[Issue]:
    """The problems of every ``${...}`` in the ``notify:`` channels."""
    data = doc.raw.data if isinstance(doc.raw.data, dict) else {}
    channels = data.get("notify")
    if not isinstance(channels, list):
        return []
    issues = []
    for index, channel in enumerate(channels):
        url = channel.get("url") if isinstance(channel, dict) else None
        if isinstance(url, str) and "${" in urlsplit(url).netloc.rpartition("@")[2]:
            issues.append(
                doc.raw.issue(
                    "a secret cannot stand for a channel URL's host: it is revealed only for "
                    "the host it is bound to",
                    ("notify", index, "url"),
                    "use the service's own URL with the secret in its path, e.g. "
                    "https://hooks.slack.com/services/${vault.NAME}",
                )
            )
    for loc, ref in find_references(channels, ("notify",)):
        if isinstance(ref, ExpressionError):
            issues.append(doc.raw.issue(ref.message, loc, ref.hint))
        elif ref.kind != "vault":
            issues.append(
                doc.raw.issue(
                    f"'${{{ref.text}}}' cannot be used in a notification channel: only secrets are",
                    loc,
                    "write the value itself, or a secret as ${vault.NAME}",
                )
            )
        else:
            problem = _unknown_secret(doc, ref.path)
            if problem is not None:
                issues.append(doc.raw.issue(problem[0], loc, problem[1]))
    return issues


def _unknown_secret(doc: ExaminedDocument, name: str) -> tuple[str, str | None] | None:
    names = doc.secrets.names()
    if doc.secrets.problem is not None:
        problem, doc.secrets.problem = doc.secrets.problem, None  # reported once
        return f"'${{vault.{name}}}' needs the vault, which cannot be opened: {problem}", None
    if names is None or name in names:
        return None
    store = f"store it first: orchestrator vault set {name} --hosts HOST (or vault_set)"
    suggestion = did_you_mean(name, names)
    return f"unknown secret '{name}' in a notification channel", (
        f"{suggestion} Otherwise {store}" if suggestion else store
    )
