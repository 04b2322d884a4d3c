#!/usr/bin/env python3
"""Summarises the last criterion run (target/criterion/**/new) as a Markdown
table for BENCHMARKS.md.

For each benchmark it prints the throughput of criterion's mean estimate and
of the fastest sample. On a shared machine the mean absorbs time spent
descheduled behind other processes; the fastest sample (one sample is
several iterations in a row) is the better estimate of what one
uncontended core does. Both are reported; neither is hidden.

    python3 benches/criterion_summary.py [target/criterion]
"""

import json
import pathlib
import sys


def rate(throughput, ns_per_iter):
    (unit, amount), = throughput.items()
    per_second = amount / (ns_per_iter / 1e9)
    if unit == "Elements":
        return f"{per_second / 1e6:.3f} M/s"
    return f"{per_second / 1e6:.1f} MB/s"


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
    print("| benchmark | mean time/iter | throughput (mean) | throughput (fastest sample) |")
    print("|---|---|---|---|")
    for bench in sorted(root.glob("**/new/benchmark.json")):
        meta = json.loads(bench.read_text())
        new = bench.parent
        mean = json.loads((new / "estimates.json").read_text())["mean"]["point_estimate"]
        sample = json.loads((new / "sample.json").read_text())
        fastest = min(t / n for t, n in zip(sample["times"], sample["iters"]))
        throughput = meta.get("throughput") or {"Elements": 1}
        print(
            f"| {meta['full_id']} | {mean / 1e3:,.1f} µs | {rate(throughput, mean)} "
            f"| {rate(throughput, fastest)} |"
        )


if __name__ == "__main__":
    main()
