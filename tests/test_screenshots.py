"""``scripts/screenshots``, run as a maintainer runs it (into a temporary folder, not docs/): its
realistic run on a real ``serve --http`` goes through to the end and the three pictures are
written, 1200 px wide — so a change to the live view's page that the script's steps no longer
match fails here rather than the next time someone regenerates the README's pictures."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PICTURES = ("live-view-waiting.png", "live-view.png", "live-view-app.png")


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and header[12:16] == b"IHDR", path
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def test_the_script_writes_the_three_pictures(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(REPO / "scripts" / "screenshots"), "--out", str(tmp_path)],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for name in PICTURES:
        width, height = png_size(tmp_path / name)
        assert width == 1200 and height > 900, (name, width, height)
        assert f"wrote {tmp_path / name}" in done.stdout
