"""Copy the benchmark results into the README.

Every block of the README between ``<!-- results:NAME -->`` and ``<!-- /results:NAME -->`` is
replaced by ``benchmarks/results/NAME.md`` (the file the benchmark wrote), so the numbers the README
quotes are always the ones a script in ``benchmarks/`` produced. Run after the benchmarks::

    python benchmarks/readme.py          # rewrite README.md
    python benchmarks/readme.py --check  # exit 1 if README.md is out of date
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from posekit.io import atomic_write_bytes

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- results:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /results:(?P=name) -->)", re.S)


def render(readme: str, results: Path) -> str:
    def fill(m: re.Match[str]) -> str:
        path = results / f"{m.group('name')}.md"
        if not path.is_file():
            raise SystemExit(f"error: {path} does not exist; run its benchmark first")
        body = path.read_text().strip()
        body = re.sub(r"\A#+ .*\n+", "", body)  # the README has its own heading for it
        body = re.sub(r"^#+ ", "#### ", body, flags=re.M)  # sub-headings nest under the README's
        return f"{m.group(1)}{body}\n{m.group(4)}"

    return BLOCK.sub(fill, readme)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="only check that README.md is up to date")
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md")
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args(argv)
    text = args.readme.read_text()
    new = render(text, args.results)
    if args.check:
        if new != text:
            print("README.md is out of date: run python benchmarks/readme.py", file=sys.stderr)
            return 1
        return 0
    atomic_write_bytes(args.readme, new.encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
