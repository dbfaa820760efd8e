"""The orchestration documents the workloads submit, and their baseline task graphs."""

from __future__ import annotations

from typing import Any

from bench.baseline import Work, noop, pass_on


def fan_in(count: int) -> dict[str, Any]:
    """``count`` independent no-op tasks, then one aggregate depending on all of them."""
    tasks: list[dict[str, Any]] = [
        {"id": f"t{i}", "type": "delay", "config": {"seconds": 0}} for i in range(count)
    ]
    tasks.append(
        {
            "id": "aggregate",
            "type": "delay",
            "config": {"seconds": 0},
            "dependencies": [f"t{i}" for i in range(count)],
        }
    )
    return {"name": f"fan-in of {count}", "max_concurrent": 10_000, "tasks": tasks}


def fan_in_graph(count: int) -> dict[str, tuple[list[str], Work]]:
    graph: dict[str, tuple[list[str], Work]] = {f"t{i}": ([], noop) for i in range(count)}
    graph["aggregate"] = ([f"t{i}" for i in range(count)], noop)
    return graph


def chain(length: int) -> dict[str, Any]:
    """``length`` tasks in a line, each returning the output of the one before."""
    tasks: list[dict[str, Any]] = [{"id": "c0", "type": "delay", "config": {"value": 0}}]
    tasks += [
        {
            "id": f"c{i}",
            "type": "delay",
            "config": {"value": f"${{c{i - 1}.output}}"},
            "dependencies": [f"c{i - 1}"],
        }
        for i in range(1, length)
    ]
    return {"name": f"chain of {length}", "tasks": tasks}


def yaml_chain(length: int) -> str:
    """``chain(length)`` as YAML text, as an agent would send it (written out directly: PyYAML
    would take seconds to dump it)."""
    lines = ["name: chain", "tasks:", "  - {id: c0, type: delay, config: {value: 0}}"]
    for i in range(1, length):
        lines += [
            f"  - id: c{i}",
            "    type: delay",
            f"    dependencies: [c{i - 1}]",
            f"    config: {{value: '${{c{i - 1}.output}}'}}",
        ]
    return "\n".join(lines) + "\n"


def yaml_wide(count: int, total_bytes: int) -> str:
    """``count`` independent tasks whose values make the text about ``total_bytes`` long (a
    large document for the validator, W8)."""
    padding = "x" * max(0, total_bytes // count - 60)
    lines = ["name: wide", "tasks:"]
    lines += [
        f"  - {{id: w{i}, type: delay, config: {{value: '{padding}'}}}}" for i in range(count)
    ]
    return "\n".join(lines) + "\n"


def chain_graph(length: int) -> dict[str, tuple[list[str], Work]]:
    graph: dict[str, tuple[list[str], Work]] = {"c0": ([], pass_on)}
    graph.update({f"c{i}": ([f"c{i - 1}"], pass_on) for i in range(1, length)})
    return graph


def sleeps(count: int, seconds: float, max_concurrent: int) -> dict[str, Any]:
    tasks = [{"id": f"s{i}", "type": "delay", "config": {"seconds": seconds}} for i in range(count)]
    return {"name": f"{count} sleeps", "max_concurrent": max_concurrent, "tasks": tasks}


def gets(urls: list[str], max_concurrent: int) -> dict[str, Any]:
    tasks = [{"id": f"g{i}", "type": "http", "config": {"url": url}} for i, url in enumerate(urls)]
    return {"name": f"{len(urls)} GETs", "max_concurrent": max_concurrent, "tasks": tasks}


def extractions(urls: list[str], selector: str) -> dict[str, Any]:
    tasks = [
        {
            "id": f"x{i}",
            "type": "browser_automation",
            "config": {"url": url, "action": "extract", "selector": selector},
        }
        for i, url in enumerate(urls)
    ]
    return {"name": f"{len(urls)} extractions", "max_concurrent": 50, "tasks": tasks}
