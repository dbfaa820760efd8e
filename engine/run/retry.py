"""Retry policy decisions: whether a failed attempt is tried again, and after how long."""

from __future__ import annotations

import random

from multi_task_orchestrator.engine.document.models import RetryPolicy
from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.run.node import Node

# "rejected": a person said no (an approval task); asking again at once changes nothing
NOT_RETRIED = frozenset({"config", "cancelled", "policy", "budget", "rejected"})


def should_retry(node: Node, failure: TaskError, *, stopping: bool) -> bool:
    """Whether ``node`` gets another attempt after ``failure`` (never while the run stops)."""
    policy = node.retry
    if policy is None or stopping or node.attempts >= node.max_attempts:
        return False
    if failure.error_class in NOT_RETRIED:
        return False
    return policy.retries(failure.error_class)


def retry_delay(policy: RetryPolicy, attempts: int, failure: TaskError) -> float:
    """Seconds until the next attempt: what the failure asked for, else the policy's backoff
    (with jitter when the policy wants it)."""
    if failure.retry_after is not None:
        return max(0.0, failure.retry_after)
    delay = policy.delay(attempts)
    if policy.jitter:
        delay *= random.uniform(0.75, 1.25)
    return delay
