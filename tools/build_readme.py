"""Rebuild README.md: the hand-written head (docs/_head.md) + each area's docs, headings shifted
so every area is a `##` section. Run after editing docs/*.md: .venv/bin/python tools/build_readme.py"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ORDER = ["core", "tracks", "nlu", "store", "server", "asr", "wecom", "_tail"]
HEADING = re.compile(r"^(#+)(\s)", re.M)


def shifted(text: str) -> str:
    in_code = False
    levels = []
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (m := HEADING.match(line)):
            levels.append(len(m.group(1)))
    if not levels:
        return text
    shift = 2 - min(levels)
    out, in_code = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (m := HEADING.match(line)):
            line = "#" * (len(m.group(1)) + shift) + line[len(m.group(1)):]
        out.append(line)
    return "\n".join(out)


def main() -> None:
    parts = [(ROOT / "docs" / "_head.md").read_text(encoding="utf-8").rstrip()]
    for name in ORDER:
        path = ROOT / "docs" / f"{name}.md"
        if path.exists():
            parts.append(shifted(path.read_text(encoding="utf-8")).rstrip())
    (ROOT / "README.md").write_text("\n\n".join(parts) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
