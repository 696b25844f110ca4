"""Summarise a `py-spy record -f raw` file: self time per frame, then inclusive time of app frames.

py-spy record -p <pid> -d 30 -r 50 -f raw --nonblocking -o /tmp/cert.txt
.venv/bin/python -m bench.spy_summary /tmp/cert.txt
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

APP_FRAMES = ("services/", "iioe/", "asyncpg/", "nats/", "fastapi", "starlette", "pydantic", "joserfc", "jinja2")


def summarise(path: Path, top: int = 15) -> str:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if frames:
            own[frames[-1]] += n
        for frame in {re.sub(r":\d+\)", ")", f) for f in frames}:
            inclusive[frame] += n
    if not total:
        return "no samples"
    lines = [f"samples {total}", "-- self"]
    lines += [f"{100 * n / total:5.1f}% {f[:140]}" for f, n in own.most_common(top)]
    lines.append("-- inclusive (application and library frames)")
    app = [(f, n) for f, n in inclusive.most_common() if any(k in f for k in APP_FRAMES)]
    lines += [f"{100 * n / total:5.1f}% {f[:140]}" for f, n in app[: top * 2]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("raw", type=Path)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    print(summarise(args.raw, args.top))


if __name__ == "__main__":
    main()
