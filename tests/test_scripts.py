"""``scripts/install``, the README's first command, as a user runs it: what it says when this
machine's Python cannot make the virtual environment, and that a second run installs nothing.

The Python here is a stand-in on a PATH holding only it and the few tools the script uses, so no
real interpreter, pip or apt-get is reached. The full install (a minute) is checked by hand.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOOLS = ("bash", "cat", "cut", "dirname", "id", "sha256sum")

# Answers like a Python of the given version; `import ensurepip` fails when NO_ENSUREPIP is set.
FAKE_PYTHON = """#!/bin/sh
echo "$0 $*" >> "$CALLS"
case "$*" in
  *ensurepip*) [ -z "$NO_ENSUREPIP" ] ;;
  *print*) echo "$MINOR" ;;
  *version_info*) [ "$MINOR" != 3.10 ] ;;
  -V) echo "Python $MINOR.0" ;;
  *) exit 1 ;;
esac
"""


def checkout(tmp_path: Path) -> Path:
    """The script, its helpers and pyproject.toml in a folder of their own."""
    root = tmp_path / "repo"
    shutil.copytree(REPO / "scripts", root / "scripts")
    shutil.copy(REPO / "pyproject.toml", root)
    return root


def install(root: Path, tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run scripts/install with only the stand-in python3 and TOOLS on PATH; its result and
    every call the stand-in received."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).unlink(missing_ok=True)
        (bin_dir / tool).symlink_to(found)
    python = bin_dir / "python3"
    python.write_text(FAKE_PYTHON, encoding="utf-8")
    python.chmod(0o755)
    calls = tmp_path / "calls"
    calls.write_text("", encoding="utf-8")
    finished = subprocess.run(
        [str(root / "scripts" / "install")],
        env={"PATH": str(bin_dir), "HOME": str(tmp_path), "CALLS": str(calls), **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return finished, calls.read_text(encoding="utf-8")


def test_a_python_older_than_3_11_is_named_with_the_fix(tmp_path: Path) -> None:
    finished, _ = install(checkout(tmp_path), tmp_path, MINOR="3.10")
    assert finished.returncode == 1
    assert finished.stderr == (
        "error: Python 3.11 or newer is needed (python3 here is Python 3.10.0); install one (on "
        "Debian/Ubuntu: sudo apt-get install python3.11 python3.11-venv) or set PYTHON to one, "
        "and run this again\n"
    )


def test_a_python_without_ensurepip_is_named(tmp_path: Path) -> None:
    root = checkout(tmp_path)
    finished, _ = install(root, tmp_path, MINOR="3.11", NO_ENSUREPIP="1")
    assert finished.returncode == 1
    assert finished.stderr.startswith("error: python3 cannot make a virtual environment")
    assert "or set PYTHON to a Python 3.11+ that can" in finished.stderr
    assert not (root / ".venv").exists()


def test_a_second_run_installs_nothing(tmp_path: Path) -> None:
    root = checkout(tmp_path)
    venv_python = root / ".venv" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    venv_python.symlink_to(tmp_path / "bin" / "python3")
    digest = hashlib.sha256((root / "pyproject.toml").read_bytes()).hexdigest()
    (root / ".venv" / ".installed-test,dask").write_text(digest, encoding="utf-8")

    # other extras than the stamp's: pip is asked (and the stand-in cannot run it)
    finished, calls = install(root, tmp_path, MINOR="3.11")
    assert finished.returncode == 1
    assert "-m pip install --quiet --disable-pip-version-check -e ." in calls

    # the same extras and pyproject.toml as the stamp: nothing is run

    again = subprocess.run(
        [str(root / "scripts" / "install"), "test,dask"],
        env={**os.environ, "CALLS": str(tmp_path / "calls2")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (again.returncode, again.stderr) == (0, "")
    assert not (tmp_path / "calls2").exists()  # the venv's python was never asked anything
