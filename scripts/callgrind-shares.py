#!/usr/bin/env python3
"""Instructions per call by crate, from two callgrind runs of one load.

    python3 scripts/callgrind-shares.py SHORT.out LONG.out CALLS_SHORT CALLS_LONG

SHORT.out and LONG.out are callgrind profiles of the same `--load` run for
two durations (say 3 s and 9 s); the difference between them divided by
the difference in calls is what one call costs, start-up left out. Each
function's own instructions are charged to the crate its source file is
in (`pool` for pool-runtime, `std (inlined)` for the standard library's
code inlined anywhere, `memcpy` and `malloc` for libc's).
"""
import collections
import re
import subprocess
import sys


def by_crate(profile):
    out = subprocess.run(
        ["callgrind_annotate", "--threshold=100", profile],
        capture_output=True, text=True, check=True,
    ).stdout
    totals = collections.Counter()
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(\S+?):", line)
        if not m or "PROGRAM TOTALS" in line:
            continue
        count, path = int(m.group(1).replace(",", "")), m.group(2)
        crate = re.search(r"index\.crates\.io-[^/]+/([A-Za-z0-9_\-]+?)-\d", path)
        if "pool-runtime" in path:
            key = "pool"
        elif crate:
            key = crate.group(1)
        elif "malloc" in path:
            key = "malloc"
        elif "string" in path:
            key = "memcpy"
        elif "rustc" in path:
            key = "std (inlined)"
        else:
            key = "other"
        totals[key] += count
    return totals


def main():
    short, long_, calls_short, calls_long = sys.argv[1:5]
    calls = int(calls_long) - int(calls_short)
    a, b = by_crate(short), by_crate(long_)
    per_call = {k: (b[k] - a[k]) / calls for k in set(a) | set(b)}
    print(f"{sum(per_call.values()):8.0f}  all")
    for key, value in sorted(per_call.items(), key=lambda kv: -kv[1])[:14]:
        print(f"{value:8.0f}  {key}")


if __name__ == "__main__":
    main()
