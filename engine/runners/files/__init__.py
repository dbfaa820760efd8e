"""The ``file_processing`` task type (aliases ``file``, ``files``): files in the workspace folder.

Every path is relative to the engine's workspace (``ORCHESTRATOR_WORKSPACE``, by default
``$ORCHESTRATOR_HOME/workspace``, created when first needed). A path that could lead out of it
is refused: one with a ``..`` part, an absolute path elsewhere, or one that leaves through a
symbolic link (the path is resolved and must stay inside). Files are then opened folder by
folder through directory descriptors without following any link (``workspace_fs``), so a folder
swapped for a link after the check fails the task instead of leading out. Writing to the
workspace itself (``.``) is refused; a write or append producing more than
``ORCHESTRATOR_MAX_WRITE_BYTES`` fails with class ``too_large``; JSON nested deeper than
``engine.limits.MAX_DATA_DEPTH`` fails its read with class ``too_deep``.

Actions:

- ``read`` — ``path``; the output is the file's data.
- ``write`` — ``path`` and ``content``; replaces the file atomically (a temporary file, then a
  rename), creating folders as needed. Output: ``{path, format, bytes}``.
- ``append`` — ``path`` and ``content``, added at the end (the file is created if missing): text
  is appended; JSONL gets one line per item (``content`` a list) or one line; CSV gets rows under
  the existing header; JSON needs the file to hold a list, which is extended (or gets one item).
  Appends to one file from parallel tasks are serialised; each is an atomic rewrite.
- ``list`` — ``path`` (default the workspace itself): ``[{name, path, type, size}]`` of a folder.
- ``glob`` — ``pattern`` (``inbox/*.csv``, ``**/*.json``): the matching files' paths, sorted, so
  ``for_each: "${find.output}"`` with ``path: "${item}"`` processes them in parallel.

Formats (``format``, or by extension: ``.json``, ``.jsonl``/``.ndjson``, ``.csv``, anything else
text): ``json`` — any value; ``jsonl`` — a list, one JSON value per line; ``csv`` — a list of
objects, the header from their keys in first-seen order (values read back as text; lists and
objects written as JSON text); ``text`` — a string.

The modules: ``config`` (the config model and the runner's settings), ``paths`` (paths checked
against the workspace), ``formats`` (data to and from each format's text), ``disk`` (the blocking
work, run in a thread, through ``engine.runners.workspace_fs``) and ``runner`` (the runner).
"""

from multi_task_orchestrator.engine.runners.files.config import FilesConfig, FileSettings
from multi_task_orchestrator.engine.runners.files.paths import inside, workspace_root
from multi_task_orchestrator.engine.runners.files.runner import FileProcessingRunner

RUNNER = FileProcessingRunner

__all__ = [
    "RUNNER",
    "FileProcessingRunner",
    "FileSettings",
    "FilesConfig",
    "inside",
    "workspace_root",
]
