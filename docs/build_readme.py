"""Fill README.md's generated blocks: the sections written in docs/*.md and the Lightning performance table.

    python docs/build_readme.py

A block ``<!-- include: docs/NAME.md -->`` ... ``<!-- end include -->`` receives the file (image paths made
relative to the repository root); the Lightning table comes from
benchmarks/render_lightning_table.py, the speech results block of docs/speech.md from
benchmarks/render_speech_table.py. Run after any results file or docs section changes.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INCLUDE = re.compile(r"(<!-- include: (?P<path>[\w./-]+) -->)(?P<body>.*?)(<!-- end include -->)", re.S)


def section(path: Path) -> str:
    text = path.read_text()
    return text.replace("](../", "](")


def main() -> None:
    # generated blocks inside docs/*.md first, so the README includes their current state
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "render_speech_table.py"), "--docs"], check=True)
    readme = ROOT / "README.md"
    src = readme.read_text()
    src = INCLUDE.sub(lambda m: f"{m.group(1)}\n{section(ROOT / m.group('path')).strip()}\n{m.group(4)}", src)
    readme.write_text(src)
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "render_lightning_table.py"), "--readme"], check=True)


if __name__ == "__main__":
    main()
