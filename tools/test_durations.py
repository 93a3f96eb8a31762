"""Write tests/file_durations.json (seconds per test file) from a ``pytest --durations=0`` log.

    .venv/bin/pytest -q --durations=0 | tee /tmp/durations.log
    .venv/bin/python tools/test_durations.py /tmp/durations.log

tests/conftest.py runs the longest files first, so that under ``make test`` (two xdist
workers, a file per worker) no worker ends the run alone on a long file it started last.
The numbers only order the files: a stale table makes the suite slower, never wrong.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

LINE = re.compile(r"^([0-9.]+)s (?:call|setup|teardown)\s+(\S+?)::")


def file_seconds(log: str) -> dict[str, int]:
    """Seconds per test file (setup, call and teardown of its tests), longest first."""
    total: Counter[str] = Counter()
    for line in log.splitlines():
        m = LINE.match(line)
        if m:
            total[Path(m.group(2)).name] += float(m.group(1))
    return {name: round(s) for name, s in total.most_common() if s >= 1}


def main(argv: list[str]) -> int:
    if argv in (["-h"], ["--help"]):  # not a log named --help
        print(__doc__)
        return 0
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        seconds = file_seconds(Path(argv[0]).read_text())
    except OSError as exc:
        print(f"error: cannot read {argv[0]} ({exc.strerror}); give the log of "
              "`pytest --durations=0`", file=sys.stderr)
        return 2
    if not seconds:
        print(f"error: {argv[0]} has no --durations lines; run pytest with --durations=0",
              file=sys.stderr)
        return 2
    out = Path(__file__).resolve().parents[1] / "tests" / "file_durations.json"
    out.write_text(json.dumps(seconds, indent=1) + "\n")
    print(f"wrote {out} ({len(seconds)} files, {sum(seconds.values())} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
