"""One peer (Ray, Dask or Prefect 3) in a process of its own, running W1–W3 on request.

``python -m bench.peer_worker PEER SLOTS`` (SLOTS: W3's concurrency) starts the peer once (its
cluster or server), warms it up, prints ``{"ready": ..., "version": ...}``, then reads one
JSON request per line from stdin (``{"form": ..., "workload": "W1", "sizes": {...}}``) and
answers each with
``{"seconds": ...}`` (or ``{"error": ...}``). A process per peer keeps each one's imports,
threads and start-up out of the others' measurements, and lets ``bench.peers`` interleave
them with this engine's runs.

Each peer is used the way its own documentation shows for the shape of work:

- Ray: ``@ray.remote`` tasks, ObjectRefs passed as arguments for the dependencies (W1, W2);
  for W3's I/O-bound sleeps, an async actor with ``max_concurrency`` (Ray's "AsyncIO /
  concurrency for actors").
- Dask: a ``distributed`` LocalCluster (2 worker processes, threads enough for W3's slots);
  ``submit``: ``client.submit`` per task, futures as arguments for the dependencies; ``batched``:
  ``client.map`` for the independent tasks, a ``dask.delayed`` graph for the chain.
- Prefect 3: ``@task`` / ``@flow`` with ``task.submit`` and futures as arguments, on the
  default task runner (W3: a ``ThreadPoolTaskRunner`` with ``max_workers`` = its slots), with
  its default ephemeral API server and SQLite database in a temporary ``PREFECT_HOME``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

Work = Callable[[dict[str, Any]], None]  # runs one workload at the sizes given


def _noop(*_: Any) -> dict[str, float]:
    return {"slept": 0.0}


def _aggregate(*outputs: Any) -> int:
    return len(outputs)


def _pass_on(value: Any) -> Any:
    return value


def _sleep(seconds: float) -> dict[str, float]:
    time.sleep(seconds)
    return {"slept": seconds}


def ray_forms(slots: int) -> tuple[str, dict[str, Work]]:
    import ray

    ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False)
    noop, aggregate, pass_on = ray.remote(_noop), ray.remote(_aggregate), ray.remote(_pass_on)

    @ray.remote
    class Sleeper:
        async def sleep(self, seconds: float) -> dict[str, float]:
            await asyncio.sleep(seconds)
            return {"slept": seconds}

    sleepers: dict[int, Any] = {}

    def w1(sizes: dict[str, Any]) -> None:
        ray.get(aggregate.remote(*[noop.remote() for _ in range(sizes["fan_in"])]))

    def w2(sizes: dict[str, Any]) -> None:
        ref = pass_on.remote(0)
        for _ in range(sizes["chain"] - 1):
            ref = pass_on.remote(ref)
        ray.get(ref)

    def w3(sizes: dict[str, Any]) -> None:
        slots = sizes["sleep_concurrency"]
        if slots not in sleepers:
            sleepers[slots] = Sleeper.options(max_concurrency=slots).remote()  # type: ignore[attr-defined]
        actor, seconds = sleepers[slots], sizes["sleep_seconds"]
        ray.get([actor.sleep.remote(seconds) for _ in range(sizes["sleeps"])])

    return ray.__version__, {"tasks": _forms(w1, w2, w3)}


def dask_forms(slots: int) -> tuple[str, dict[str, Work]]:
    import dask
    from dask.distributed import Client, LocalCluster

    workers = 2 if slots % 2 == 0 else 1  # W3's slots exactly, over both cores when they split
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=slots // workers,
        dashboard_address=None,
        silence_logs=40,
    )
    client = Client(cluster)

    def w1_submit(sizes: dict[str, Any]) -> None:
        futures = [client.submit(_noop, pure=False) for _ in range(sizes["fan_in"])]
        client.submit(_aggregate, *futures, pure=False).result()

    def w2_submit(sizes: dict[str, Any]) -> None:
        future = client.submit(_pass_on, 0, pure=False)
        for _ in range(sizes["chain"] - 1):
            future = client.submit(_pass_on, future, pure=False)
        future.result()

    def w3_submit(sizes: dict[str, Any]) -> None:
        seconds = sizes["sleep_seconds"]
        client.gather([client.submit(_sleep, seconds, pure=False) for _ in range(sizes["sleeps"])])

    def w1_batched(sizes: dict[str, Any]) -> None:
        futures = client.map(_noop, range(sizes["fan_in"]), pure=False)
        client.submit(_aggregate, *futures, pure=False).result()

    def w2_batched(sizes: dict[str, Any]) -> None:
        step = dask.delayed(_pass_on, pure=False)
        value = step(0)
        for _ in range(sizes["chain"] - 1):
            value = step(value)
        client.compute(value).result()

    def w3_batched(sizes: dict[str, Any]) -> None:
        seconds = [sizes["sleep_seconds"]] * sizes["sleeps"]
        client.gather(client.map(_sleep, seconds, pure=False))

    return dask.__version__, {
        "submit": _forms(w1_submit, w2_submit, w3_submit),
        "batched": _forms(w1_batched, w2_batched, w3_batched),
    }


def prefect_forms(slots: int) -> tuple[str, dict[str, Work]]:
    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="bench-prefect-"))
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    import prefect
    from prefect import flow, task
    from prefect.futures import wait
    from prefect.task_runners import ThreadPoolTaskRunner

    noop, aggregate, pass_on, sleep = (task(f) for f in (_noop, _aggregate, _pass_on, _sleep))

    def w1(sizes: dict[str, Any]) -> None:
        @flow
        def fan_in() -> None:
            futures = [noop.submit() for _ in range(sizes["fan_in"])]
            aggregate.submit(*futures).result()

        fan_in()

    def w2(sizes: dict[str, Any]) -> None:
        @flow
        def chain() -> None:
            future = pass_on.submit(0)
            for _ in range(sizes["chain"] - 1):
                future = pass_on.submit(future)
            future.result()

        chain()

    def w3(sizes: dict[str, Any]) -> None:
        @flow(task_runner=ThreadPoolTaskRunner(max_workers=sizes["sleep_concurrency"]))
        def sleeps() -> None:
            wait([sleep.submit(sizes["sleep_seconds"]) for _ in range(sizes["sleeps"])])

        sleeps()

    return prefect.__version__, {"flows": _forms(w1, w2, w3)}


def _forms(w1: Work, w2: Work, w3: Work) -> Any:
    return {"W1": w1, "W2": w2, "W3": w3}


PEERS: dict[str, Callable[[int], tuple[str, dict[str, Any]]]] = {
    "ray": ray_forms,
    "dask": dask_forms,
    "prefect": prefect_forms,
}

WARM_UP = {
    "fan_in": 10,
    "chain": 5,
    "sleeps": 5,
    "sleep_seconds": 0.001,
}


def main(peer: str, slots: int) -> None:
    answer = sys.stdout
    sys.stdout = sys.stderr  # whatever the peer prints must not mix with the answers
    version, forms = PEERS[peer](slots)
    warm_up = {**WARM_UP, "sleep_concurrency": slots}  # W3's actor or pool is made here
    for workloads in forms.values():  # the first run of each pays for imports and caches
        for work in workloads.values():
            work(warm_up)
    answer.write(json.dumps({"ready": True, "version": version}) + "\n")
    answer.flush()
    for line in sys.stdin:
        request = json.loads(line)
        work = forms[request["form"]][request["workload"]]
        started = time.perf_counter()
        try:
            work(request["sizes"])
            reply: dict[str, Any] = {"seconds": time.perf_counter() - started}
        except Exception as exc:  # reported as the cell's text; the other cells go on
            reply = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        answer.write(json.dumps(reply) + "\n")
        answer.flush()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
