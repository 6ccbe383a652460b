import sys, re, collections
path = sys.argv[1]
threads = collections.Counter(); selfc = collections.Counter(); incl = collections.Counter(); total = 0
for line in open(path):
    line = line.rstrip()
    if not line: continue
    stack, n = line.rsplit(" ", 1); n = int(n)
    frames = stack.split(";")
    th = frames[0]; frames = frames[1:]
    th = re.sub(r"\(0x[0-9a-f]+\)", "", th).strip()
    threads[th] += n; total += n
    if frames:
        f = re.sub(r":\d+\)", ")", frames[-1]); selfc[(th[:22], f)] += n
    seen = set()
    for f in frames:
        f = re.sub(r":\d+\)", ")", f)
        if "ganime" in f and f not in seen:
            seen.add(f); incl[(th[:22], f)] += n
print("samples", total)
for t, n in threads.most_common(8): print(f"  thread {t[:40]:40s} {n/total:6.1%}")
print("self:")
for (t, f), n in selfc.most_common(14): print(f"  {n/total:6.1%} {t:22s} {f[:110]}")
print("inclusive (ganime):")
for (t, f), n in incl.most_common(45): print(f"  {n/total:6.1%} {t:22s} {f[:110]}")
