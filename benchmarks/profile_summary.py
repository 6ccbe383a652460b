"""Summarise a py-spy profile recorded with ``--format raw --threads``: share of samples per
thread, the functions where they were taken (self), and ganime's functions on the stack.

    py-spy record -r 40 -f raw --threads -o prof.txt -- python -m ganime convert clip.mkv -o out.mkv
    python benchmarks/profile_summary.py prof.txt
"""

from __future__ import annotations

import argparse
import collections
import re


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("profile")
    ap.add_argument("--top", type=int, default=45)
    args = ap.parse_args()
    threads: collections.Counter[str] = collections.Counter()
    own: collections.Counter[tuple[str, str]] = collections.Counter()
    within: collections.Counter[tuple[str, str]] = collections.Counter()
    total = 0
    with open(args.profile) as f:
        for line in f:
            line = line.rstrip()
            if not line:
                continue
            stack, count = line.rsplit(" ", 1)
            n = int(count)
            thread, *frames = stack.split(";")
            thread = re.sub(r"\(0x[0-9a-f]+\)", "", thread).strip()
            threads[thread] += n
            total += n
            frames = [re.sub(r":\d+\)", ")", x) for x in frames]  # one entry per function
            if frames:
                own[(thread, frames[-1])] += n
            for x in dict.fromkeys(x for x in frames if "ganime" in x):
                within[(thread, x)] += n
    print("samples", total)
    for t, n in threads.most_common(8):
        print(f"  {n / total:6.1%} {t}")
    print("self:")
    for (t, x), n in own.most_common(14):
        print(f"  {n / total:6.1%} {t[:24]:24s} {x[:110]}")
    print("ganime functions on the stack:")
    for (t, x), n in within.most_common(args.top):
        print(f"  {n / total:6.1%} {t[:24]:24s} {x[:110]}")


if __name__ == "__main__":
    main()
