"""Reading a ``.env`` file (``NAME=VALUE`` lines) for ``orchestrator vault import``.

Parsing is python-dotenv's: comments, ``export`` prefixes, single and double quotes (escapes in
double quotes, values over several lines). No ``${VAR}`` interpolation: a ``$`` in a password
stays as it is. Every problem is reported by line number at once, and nothing from the file's
lines is ever echoed, since they hold secrets.
"""

from __future__ import annotations

import io
from pathlib import Path

from dotenv.parser import parse_stream

from multi_task_orchestrator.vault.errors import VaultError

# Read no further (a file that never ends, such as /dev/zero, is not read to its end): 64
# secrets of the largest size a secret may have (secret.MAX_VALUE_BYTES, 64 KiB).
MAX_FILE_BYTES = 4 * 1024 * 1024


def read_env_file(path: Path) -> dict[str, str]:
    """The ``NAME: value`` pairs of ``path``, in file order (a repeated name: the last wins)."""
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise VaultError(
                f"{path} is over {MAX_FILE_BYTES // (1024 * 1024)} MB, more than a .env file of "
                "secrets holds; import a file of NAME=VALUE lines"
            )
        text = io.StringIO(data.decode("utf-8"), newline=None)  # \r\n read as \n, as open()
        bindings = list(parse_stream(text))
    except FileNotFoundError:
        raise VaultError(f"no such file: {path}") from None
    except UnicodeDecodeError:
        raise VaultError(f"{path} is not UTF-8 text; a .env file holds NAME=VALUE lines") from None
    except OSError as exc:
        raise VaultError(f"cannot read {path}: {exc.strerror}") from None
    values: dict[str, str] = {}
    problems: list[str] = []
    for binding in bindings:
        line = binding.original.line
        if binding.error:
            problems.append(f"line {line}: not a NAME=VALUE line")
        elif binding.key is None:
            continue  # a comment or a blank line
        elif binding.value is None:
            problems.append(f"line {line}: {binding.key} has no '=' and no value")
        elif binding.value == "":
            problems.append(f"line {line}: {binding.key} has an empty value")
        else:
            values[binding.key] = binding.value
    if problems:
        raise VaultError(f"cannot import {path}: " + "; ".join(problems) + "; nothing was stored")
    if not values:
        raise VaultError(f"{path} has no NAME=VALUE lines; nothing was stored")
    return values
