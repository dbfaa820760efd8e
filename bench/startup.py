"""W9 and W10: how fast a document loads, and how fast the ``orchestrator`` command starts.

W9 loads the same document, in this process, with the orchestrator's loader and with the
library baseline — libyaml's own loader (``yaml.CSafeLoader``) for the YAML text, ``json.loads``
for the JSON text — interleaved, and compares the medians. The loader keeps its limits (size,
nesting, aliases, task count); the positions of values, which it finds only when a problem is
reported, are timed apart in the details.

W10 starts real processes, as a user's shell or an MCP client does: ``orchestrator --help``,
``orchestrator validate FILE``, and ``orchestrator serve`` up to its answer to ``initialize``
over stdio (the time it then takes to stop, once its input ends, is in the details); interleaved
with ``python -c pass`` (the interpreter's own start) in the same rounds. Each process runs with
the bytecode cache, as an installed package has it.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from bench import documents
from bench.workloads import FULL, Row, Sizes
from multi_task_orchestrator.engine.document.loader import load_text

LOAD_TARGET = 2.0  # times the baseline's time, YAML and JSON alike
HELP_TARGET = VALIDATE_TARGET = 0.25  # seconds
INITIALIZE_TARGET = 0.6  # seconds
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "bench", "version": "1"},
    },
}


def _median_seconds(work: Callable[[], Any], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _interleaved(pairs: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    """The median seconds of each callable, run in turn, round after round."""
    times: dict[str, list[float]] = {name: [] for name in pairs}
    for _ in range(rounds):
        for name, work in pairs.items():
            started = time.perf_counter()
            work()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


async def loading(sizes: Sizes, home: Path) -> Row:
    count = sizes.fan_in
    rounds = 15 if count >= FULL.fan_in else 3
    document = documents.fan_in(count)
    yaml_text = yaml.safe_dump(document, sort_keys=False)
    json_text = json.dumps(document, indent=2)
    assert load_text(yaml_text).data == document == load_text(json_text).data
    medians = _interleaved(
        {
            "libyaml": lambda: yaml.load(yaml_text, Loader=yaml.CSafeLoader),
            "yaml": lambda: load_text(yaml_text),
            "json.loads": lambda: json.loads(json_text),
            "json": lambda: load_text(json_text),
        },
        rounds,
    )
    positions = _median_seconds(lambda: load_text(yaml_text).positions, max(3, rounds // 3))
    yaml_ratio = medians["yaml"] / medians["libyaml"]
    json_ratio = medians["json"] / medians["json.loads"]
    kib = len(yaml_text.encode()) / 1024, len(json_text.encode()) / 1024
    return Row(
        "W9",
        f"load a {count:,}-task document: YAML ({kib[0]:.0f} KiB), JSON ({kib[1]:.0f} KiB)",
        f"YAML {medians['yaml'] * 1000:.1f} ms; JSON {medians['json'] * 1000:.2f} ms",
        f"libyaml {medians['libyaml'] * 1000:.1f} ms; json.loads "
        f"{medians['json.loads'] * 1000:.2f} ms",
        f"{yaml_ratio:.2f}x; {json_ratio:.2f}x",
        f"<= {LOAD_TARGET:g}x each",
        yaml_ratio <= LOAD_TARGET and json_ratio <= LOAD_TARGET,
        {
            "yaml_seconds": medians["yaml"],
            "libyaml_seconds": medians["libyaml"],
            "yaml_ratio": yaml_ratio,
            "json_seconds": medians["json"],
            "json_loads_seconds": medians["json.loads"],
            "json_ratio": json_ratio,
            "yaml_with_positions_seconds": positions,
            "rounds": rounds,
        },
    )


def _environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed package has its bytecode cached
    env["ORCHESTRATOR_HOME"] = str(home)
    return env


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "multi_task_orchestrator.server.cli", *args]


def _run(command: list[str], env: dict[str, str]) -> float:
    """The seconds ``command`` takes, from its start to its end."""
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[3:])} failed: {done.stderr.decode()[-500:]}")
    return time.perf_counter() - started


def _serve_until_initialized(env: dict[str, str], stops: list[float]) -> float:
    """The seconds from starting ``serve`` to its answer to ``initialize``; the seconds it then
    takes to stop once its input ends go to ``stops``."""
    started = time.perf_counter()
    server = subprocess.Popen(
        _command("serve"),
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert server.stdin is not None and server.stdout is not None
    try:
        server.stdin.write((json.dumps(INITIALIZE) + "\n").encode())
        server.stdin.flush()
        answer = json.loads(server.stdout.readline() or b"null")
        answered = time.perf_counter()
        if not isinstance(answer, dict) or "result" not in answer:
            raise RuntimeError(f"serve did not answer initialize: {answer!r}")
    finally:
        server.stdin.close()  # the end of input ends the server
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    stops.append(time.perf_counter() - answered)
    return answered - started


async def startup(sizes: Sizes, home: Path) -> Row:
    rounds = 7 if sizes.fan_in >= FULL.fan_in else 2
    env = _environment(home / "w10")
    document = home / "document.yaml"
    document.write_text(documents.yaml_chain(20), encoding="utf-8")
    stops: list[float] = []
    commands: dict[str, Callable[[], float]] = {
        "python -c pass": lambda: _run([sys.executable, "-c", "pass"], env),
        "--help": lambda: _run(_command("--help"), env),
        "validate": lambda: _run(_command("validate", str(document)), env),
        "initialize": lambda: _serve_until_initialized(env, stops),
    }
    for command in commands.values():  # once, to write the bytecode cache and the home folder
        command()
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, command in commands.items():
            times[name].append(command())
    medians = {name: statistics.median(values) for name, values in times.items()}
    python = medians.pop("python -c pass")
    targets = {"--help": HELP_TARGET, "validate": VALIDATE_TARGET, "initialize": INITIALIZE_TARGET}
    met = {name: medians[name] <= target for name, target in targets.items()}
    return Row(
        "W10",
        "start-up: orchestrator --help; validate FILE; serve until it answers initialize",
        "; ".join(f"{medians[name]:.2f} s" for name in targets),
        f"python -c pass {python:.3f} s",
        "; ".join(f"{medians[name] / python:.0f}x" for name in targets),
        "; ".join(f"<= {target:g} s" for target in targets.values()),
        all(met.values()),
        {
            "seconds": medians,
            "python_seconds": python,
            "targets_seconds": targets,
            "met": met,
            "serve_stop_seconds": statistics.median(stops[1:]),
            "rounds": rounds,
        },
    )
