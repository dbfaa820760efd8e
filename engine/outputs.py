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

from multi_task_orchestrator.engine.atomic import write_atomic

DEFAULT_THRESHOLD = 256 * 1024
REFERENCE_KEY = "$output_file"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def keep(output_json: str, run_dir: Path, task_id: str, threshold: int) -> str:
    """What to store for an output: the JSON itself, or a reference to the file it went to."""
    if len(output_json) <= threshold:
        return output_json
    folder = run_dir / "outputs"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"outputs/{_UNSAFE.sub('_', task_id)}.json"
    write_atomic(run_dir / name, output_json)
    return json.dumps({REFERENCE_KEY: name, "bytes": len(output_json.encode("utf-8"))})


def reference(stored_json: str | None) -> str | None:
    """The file name when ``stored_json`` is a reference to an output file, else None."""
    if not stored_json or not stored_json.startswith('{"' + REFERENCE_KEY):
        return None
    return json.loads(stored_json)[REFERENCE_KEY]


def load(stored_json: str | None, run_dir: str | Path | None) -> Any:
    """The output a stored value stands for, reading its file when it is a reference."""
    if stored_json is None:
        return None
    name = reference(stored_json)
    if name is None:
        return json.loads(stored_json)
    if run_dir is None:
        return json.loads(stored_json)
    return json.loads((Path(run_dir) / name).read_text(encoding="utf-8"))
