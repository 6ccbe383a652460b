"""CPU seconds per thread of one ``ganime`` command, run in this process (Linux: /proc).

    python benchmarks/thread_cpu.py convert clip.mkv -o out.mkv --no-progress

A profile says where a thread spends its samples; this says which thread spends the
machine: the engine (``MainThread``), decoding and analysis (``ganime-read``), the
writer (``ganime-write``), the mask and band threads, and the encoder's own threads
(libx264's are unnamed: they show as ``python``). On two cores, the sum over threads
against twice the wall time says how much of the machine stood idle.
"""

from __future__ import annotations

import collections
import os
import re
import sys
import threading
import time


def main() -> None:
    tick = os.sysconf("SC_CLK_TCK")
    seen: dict[int, tuple[str, float]] = {}
    names: dict[int, str] = {}
    done = threading.Event()

    def poll() -> None:
        # Threads end before the command does: read every thread's counters while it lives.
        while not done.is_set():
            for t in threading.enumerate():
                if t.native_id:
                    names[t.native_id] = re.sub(r"_\d+$", "", t.name)  # executor threads: name_0
            for tid in os.listdir("/proc/self/task"):
                try:
                    with open(f"/proc/self/task/{tid}/stat") as f:
                        stat = f.read()
                except OSError:
                    continue
                comm = stat[stat.index("(") + 1 : stat.rindex(")")]
                fields = stat[stat.rindex(")") + 2 :].split()
                seen[int(tid)] = (names.get(int(tid), comm), (int(fields[11]) + int(fields[12])) / tick)
            time.sleep(0.1)

    watcher = threading.Thread(target=poll, name="thread_cpu", daemon=True)
    watcher.start()
    started = time.perf_counter()
    from ganime.entry import main as ganime

    sys.argv = ["ganime", *sys.argv[1:]]
    code = 0
    try:
        ganime()
    except SystemExit as e:
        code = 0 if e.code is None else e.code if isinstance(e.code, int) else 1
    time.sleep(0.3)  # a last reading
    done.set()
    watcher.join()
    wall = time.perf_counter() - started
    per_name: collections.Counter[str] = collections.Counter()
    for tid, (name, cpu) in seen.items():
        if tid != watcher.native_id:
            per_name[name] += cpu
    total = sum(per_name.values())
    print(f"wall {wall:.2f} s, CPU {total:.2f} s ({total / wall:.2f} cores)", file=sys.stderr)
    for name, cpu in per_name.most_common():
        print(f"  {name:<20}{cpu:8.2f} s", file=sys.stderr)
    raise SystemExit(code)


if __name__ == "__main__":
    main()
