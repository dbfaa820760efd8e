"""The data of a file's text and the text of data, in each format (JSON, JSONL, CSV, text),
and the whole new text of a file after an append."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from multi_task_orchestrator.engine.errors import ConfigError, TaskError
from multi_task_orchestrator.engine.limits import MAX_DATA_DEPTH, nests_deeper
from multi_task_orchestrator.engine.runners.files.config import Format
from multi_task_orchestrator.engine.runners.files.disk import MAX_READ_BYTES

# a field may be as long as a file read at once (the standard library stops at 128 KiB)
csv.field_size_limit(max(csv.field_size_limit(), MAX_READ_BYTES))


def parse(text: str, fmt: Format, shown: str) -> Any:
    """The data of a file's text."""
    if fmt == "text":
        return text
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        try:
            return list(reader)
        except csv.Error as exc:
            raise TaskError(f"{shown} line {reader.line_num} is not CSV: {exc}") from None
    if fmt == "json":
        try:
            return _shallow(json.loads(text), shown)
        except json.JSONDecodeError as exc:
            raise TaskError(
                f"{shown} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
            ) from None
        except RecursionError:
            raise _too_deep(shown) from None
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                items.append(_shallow(json.loads(line), shown))
            except json.JSONDecodeError as exc:
                raise TaskError(f"{shown} line {number} is not valid JSON: {exc.msg}") from None
            except RecursionError:
                raise _too_deep(shown) from None
    return items


def _shallow(data: Any, shown: str) -> Any:
    if nests_deeper(data, MAX_DATA_DEPTH):
        raise _too_deep(shown)
    return data


def _too_deep(shown: str) -> TaskError:
    return TaskError(
        f"{shown} holds JSON nested more than {MAX_DATA_DEPTH} levels deep; it is refused so "
        "that nothing walking it can exhaust the stack (read it with format: text)",
        "too_deep",
    )


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "a number"
    )


def render(content: Any, fmt: Format, shown: str) -> str:
    """The text of a file holding ``content``."""
    if fmt == "json":
        return _json(content, shown, indent=2) + "\n"
    if fmt == "jsonl":
        if not isinstance(content, list):
            raise ConfigError(
                f"{shown}: format jsonl writes a list (one line per item), not {_kind(content)}"
            )
        return "".join(_json(item, shown) + "\n" for item in content)
    if fmt == "csv":
        rows = _rows(content, shown)
        return _csv_text(rows, _header(rows))
    if not isinstance(content, str):
        raise ConfigError(
            f"{shown}: format text writes a string, not {_kind(content)}; use format: json"
        )
    return content


def _rows(content: Any, shown: str) -> list[dict[str, Any]]:
    rows = [content] if isinstance(content, dict) else content
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise ConfigError(f"{shown}: format csv writes a list of objects, not {_kind(content)}")
    return rows


def _header(rows: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(str(key) for row in rows for key in row))


def _json(value: Any, shown: str, indent: int | None = None) -> str:
    """JSON text as the standard has it: NaN and Infinity, which it lacks, are refused."""
    try:
        return json.dumps(value, ensure_ascii=False, indent=indent, allow_nan=False)
    except ValueError:
        raise ConfigError(
            f"{shown}: the content holds NaN or Infinity, which JSON cannot hold (a file "
            "written with them is not JSON to other programs); replace them, e.g. with null"
        ) from None


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _csv_text(rows: list[dict[str, Any]], header: list[str], *, header_line: bool = True) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    if header_line:
        writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in header])
    return buffer.getvalue()


def appended(existing: str, content: Any, fmt: Format, shown: str) -> str:
    """The whole new text of a file after appending ``content``."""
    if fmt == "text":
        return existing + render(content, "text", shown)
    if fmt == "jsonl":
        lines = render(content if isinstance(content, list) else [content], "jsonl", shown)
        return existing + ("\n" if existing and not existing.endswith("\n") else "") + lines
    if fmt == "json":
        current = parse(existing, "json", shown) if existing.strip() else []
        if not isinstance(current, list):
            raise TaskError(
                f"{shown} holds {_kind(current)}; appending to a JSON file needs a list in it"
            )
        current.extend(content if isinstance(content, list) else [content])
        return render(current, "json", shown)
    rows = _rows(content, shown)
    header = next(csv.reader(io.StringIO(existing, newline="")), None) if existing else None
    if header is None:
        return _csv_text(rows, _header(rows))
    unknown = [column for column in _header(rows) if column not in header]
    if unknown:
        raise TaskError(
            f"{shown}: column(s) {', '.join(unknown)} are not in the file's header "
            f"({', '.join(header)})"
        )
    separator = "\n" if not existing.endswith("\n") else ""
    return existing + separator + _csv_text(rows, header, header_line=False)
