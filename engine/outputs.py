"""Large task outputs live in files in the run folder; the database and memory keep a reference.

An output whose JSON is longer than the engine's threshold (256 KB by default) is written to
``<run folder>/outputs/<task>.json`` and replaced, in the state database and in the engine's
memory, by ``{"$output_file": "outputs/<task>.json", "bytes": N}``. Reading it back (a
reference in a later task's config, results, reports) loads the file on demand, so memory stays
bounded however large a run's outputs grow.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import orjson

from multi_task_orchestrator.engine.atomic import write_atomic
from multi_task_orchestrator.engine.errors import TaskError

DEFAULT_THRESHOLD = 256 * 1024
# An output past either bound is serialised (and masked, and kept) off the event loop: a
# 200 MB one took the loop ~2 s, which every other call waited for.
LARGE_CHARACTERS = 1024 * 1024
LARGE_VALUES = 20_000
REFERENCE_KEY = "$output_file"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_REFERENCE_START = '{"' + REFERENCE_KEY
_FILE_NAME = re.compile(r"outputs/[A-Za-z0-9_.-]+\.json")  # one name in the folder, no path


def keep(output_json: str | bytes, run_dir: Path, task_id: str, threshold: int) -> str:
    """What to store for an output (its JSON, as text or UTF-8): the JSON itself, or a
    reference to the file it went to.

    An output that looks like a reference (a web page can answer with any JSON) goes to a file
    whatever its size, so that a value stored as it is is never taken for a reference."""
    if len(output_json) <= threshold:
        text = output_json if isinstance(output_json, str) else output_json.decode("utf-8")
        if not text.startswith(_REFERENCE_START):
            return text
    encoded = output_json.encode("utf-8") if isinstance(output_json, str) else output_json
    folder = run_dir / "outputs"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"outputs/{_UNSAFE.sub('_', task_id)}.json"
    write_atomic(run_dir / name, encoded)
    return json.dumps({REFERENCE_KEY: name, "bytes": len(encoded)})


def looks_large(value: Any) -> bool:
    """Whether ``value`` has more than ``LARGE_VALUES`` values or ``LARGE_CHARACTERS`` of text:
    found by a walk that stops as soon as it knows, so a small output costs a few steps."""
    values = characters = 0
    pending = [value]
    while pending:
        item = pending.pop()
        values += 1
        if isinstance(item, str | bytes):
            characters += len(item)
        elif isinstance(item, dict):
            pending.extend(item.values())
            characters += sum(len(key) for key in item if isinstance(key, str))
        elif isinstance(item, list | tuple):
            pending.extend(item)
        if values > LARGE_VALUES or characters > LARGE_CHARACTERS:
            return True
    return False


def dumps_large(value: Any) -> bytes | str:
    """``json.dumps(value, default=str)`` for a large value, ~8x faster and as UTF-8 (orjson:
    compact, in one call that holds the interpreter lock ~0.1 s per 200 MB instead of ~1 s);
    the standard library's text for what orjson refuses (an integer beyond 64 bits)."""
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(value, default=str)


# The JSON escape of half a surrogate pair without its other half: what json.loads makes of a
# server's "\ud800", a string no UTF-8 text (an MCP answer, the CLI's output) can hold.
_LONE_SURROGATE = re.compile(
    r"\\ud[89ab][0-9a-f]{2}(?!\\ud[c-f][0-9a-f]{2})|(?<!\\ud[89ab][0-9a-f]{2})\\ud[c-f][0-9a-f]{2}"
)


def holds_lone_surrogate(output_json: str | bytes) -> bool:
    """Whether JSON from ``json.dumps`` (ASCII) escapes a lone surrogate; orjson's UTF-8 never
    holds one (it refuses them, and ``dumps_large`` falls back to ``json.dumps``)."""
    return isinstance(output_json, str) and _LONE_SURROGATE.search(output_json) is not None


def reference(stored_json: str | None) -> str | None:
    """The file name when ``stored_json`` is a reference to an output file (in the run's
    ``outputs`` folder, as ``keep`` names them), else None."""
    if not stored_json or not stored_json.startswith(_REFERENCE_START):
        return None
    value = json.loads(stored_json)
    # a value that only looks like one (stored before keep wrote them to files) is no reference
    return value[REFERENCE_KEY] if referenced(value) else None


def load_files(
    values: dict[str, Any], run_dir: str | Path | None, *, missing_ok: bool = False
) -> dict[str, Any]:
    """``values`` (held outputs by task id) with each reference to an output file replaced by
    what the file holds; the others as they are. With ``missing_ok`` (outputs to show) a file
    that is gone is replaced by ``{"output_missing": why}`` instead of failing every output.
    Large files take a while: call it off the event loop (``cpu_bound``)."""
    if run_dir is None:
        return dict(values)
    return {
        task_id: _read(run_dir, value[REFERENCE_KEY], missing_ok) if referenced(value) else value
        for task_id, value in values.items()
    }


def referenced(value: Any) -> bool:
    """Whether a held output is the reference to an output file (``keep``)."""
    return (
        isinstance(value, dict)
        and len(value) == 2
        and isinstance(value.get(REFERENCE_KEY), str)
        and _FILE_NAME.fullmatch(value[REFERENCE_KEY]) is not None
        and isinstance(value.get("bytes"), int)
    )


def load(stored_json: str | None, run_dir: str | Path | None) -> Any:
    """The output a stored value stands for, reading its file when it is a reference."""
    if stored_json is None:
        return None
    name = reference(stored_json)
    if name is None:
        return json.loads(stored_json)
    if run_dir is None:
        return json.loads(stored_json)
    return _read(run_dir, name)


def _read(run_dir: str | Path, name: str, missing_ok: bool = False) -> Any:
    path = Path(run_dir) / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if not missing_ok:  # the task that needs it fails; the run and the others go on
            raise TaskError(
                f"an output this task uses is gone: its file {path} was moved or deleted; a "
                "retry reruns only failed tasks, so run the document again to produce it anew",
                "config",
            ) from None
        return {
            "output_missing": f"{path}, which held this output, is gone (its run's folder "
            "was moved or deleted)"
        }
