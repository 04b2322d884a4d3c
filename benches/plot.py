#!/usr/bin/env python3
"""Tables (Markdown, to stdout) and plots (SVG, no dependencies) from
benches/results/*.json written by benches/run.py.

    python3 benches/plot.py            # results of the real runs
    python3 benches/plot.py --smoke    # the smoke results (CI)
"""

import argparse
import json
import os

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def load(name, smoke):
    path = os.path.join(RESULTS, f"{name}{'-smoke' if smoke else ''}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def mib(b):
    return b / 2**20


def fmt(v, digits=0):
    if v is None:
        return "–"
    return f"{v:,.{digits}f}"


def e2e_table(doc):
    print("| record | mode | allocator | completion | user records/s | MB/s | producer CPU s / M records | "
          "emulator CPU s | producer peak RSS MiB | p50 ms | p99 ms | read-back |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in doc["runs"]:
        lat50 = r.get("latency_us_p50")
        lat99 = r.get("latency_us_p99")
        print(f"| {r['record_size']} B | {r.get('mode', '')} | {r.get('allocator', 'system')} | "
              f"{r.get('completion', 'callback')} | {fmt(r['records_per_s'])} | "
              f"{fmt(r['mb_per_s'], 1)} | {fmt(r.get('tree_cpu_s_per_million'), 2)} | "
              f"{fmt(r.get('emulator_cpu_s'), 2)} | {fmt(mib(r['tree_peak_rss_bytes']), 1)} | "
              f"{fmt(lat50 / 1000 if lat50 else None, 1)} | {fmt(lat99 / 1000 if lat99 else None, 1)} | "
              f"{'ok' if r.get('readback_ok') else 'FAIL'} ({r.get('readback_bytes_ratio')}) |")


def util_table(doc):
    print("| producer | instances | delivered MiB/s | utilisation of 4 MiB/s | "
          "throttled / delivered (window) | throttled / delivered (incl. drain) | "
          "steady state: utilisation | steady state: throttled / delivered |")
    print("|---|---|---|---|---|---|---|---|")
    for r in doc["runs"]:
        def percent(key):
            return None if r.get(key) is None else 100 * r[key]
        steady, steady_throttled = percent("steady_utilisation"), percent("steady_throttled_per_delivered")
        print(f"| {r['harness']} | {r['producers']} | {r['delivered_mib_per_s']:.2f} | "
              f"{100 * r['utilisation']:.1f}% | {100 * r['throttled_per_delivered']:.2f}% | "
              f"{100 * r['throttled_per_delivered_total']:.2f}% | "
              f"{fmt(steady, 1)}% | {fmt(steady_throttled, 2)}% |")


def memory_table(doc):
    print("| producer | buffer cap MiB | peak RSS MiB (process tree) | above cap MiB | records sent | failed (expired) |")
    print("|---|---|---|---|---|---|")
    for r in doc["runs"]:
        print(f"| {r['harness']} | {mib(r['buffer_cap_bytes']):.0f} | {mib(r['tree_peak_rss_bytes']):.1f} | "
              f"{r['peak_rss_above_cap_mib']:.1f} | {fmt(r.get('sent'))} | {fmt(r.get('failed'))} |")


def python_table(doc):
    print("| mode | records/s (delivered) | accepted/s | CPU s |")
    print("|---|---|---|---|")
    for r in doc["runs"]:
        print(f"| {r['label']} | {fmt(r['records_per_s'])} | {fmt(r.get('accepted_per_s'))} | "
              f"{fmt(r.get('cpu_s'), 2)} |")


def svg_lines(path, title, series, xlabel, ylabel, hline=None):
    """series: [(name, [(x, y), ...])]"""
    w, h, m = 640, 360, 50
    xs = [x for _, pts in series for x, _ in pts] or [0, 1]
    ys = [y for _, pts in series for _, y in pts] + ([hline] if hline else []) or [0, 1]
    x0, x1 = 0, max(xs) or 1
    y0, y1 = 0, (max(ys) or 1) * 1.1
    sx = lambda x: m + (x - x0) / (x1 - x0) * (w - 2 * m)
    sy = lambda y: h - m - (y - y0) / (y1 - y0) * (h - 2 * m)
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e"]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{w / 2}" y="20" text-anchor="middle" font-size="14">{title}</text>',
           f'<line x1="{m}" y1="{h - m}" x2="{w - m}" y2="{h - m}" stroke="black"/>',
           f'<line x1="{m}" y1="{m}" x2="{m}" y2="{h - m}" stroke="black"/>',
           f'<text x="{w / 2}" y="{h - 10}" text-anchor="middle">{xlabel}</text>',
           f'<text x="15" y="{h / 2}" transform="rotate(-90 15 {h / 2})" text-anchor="middle">{ylabel}</text>']
    for i in range(5):
        yv = y0 + (y1 - y0) * i / 4
        out.append(f'<text x="{m - 5}" y="{sy(yv) + 4}" text-anchor="end">{yv:.0f}</text>')
        xv = x0 + (x1 - x0) * i / 4
        out.append(f'<text x="{sx(xv)}" y="{h - m + 15}" text-anchor="middle">{xv:.0f}</text>')
    if hline:
        out.append(f'<line x1="{m}" y1="{sy(hline)}" x2="{w - m}" y2="{sy(hline)}" stroke="gray" stroke-dasharray="4"/>')
    for i, (name, pts) in enumerate(series):
        c = colors[i % len(colors)]
        d = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        out.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="{d}"/>')
        out.append(f'<text x="{w - m - 5}" y="{m + 15 * (i + 1)}" text-anchor="end" fill="{c}">{name}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out))


def svg_bars(path, title, bars, ylabel):
    """bars: [(label, value)]"""
    w, h, m = 640, 360, 60
    top = max([v for _, v in bars] + [1]) * 1.15
    bw = (w - 2 * m) / max(1, len(bars))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{w / 2}" y="20" text-anchor="middle" font-size="14">{title}</text>',
           f'<line x1="{m}" y1="{h - m}" x2="{w - m}" y2="{h - m}" stroke="black"/>',
           f'<text x="15" y="{h / 2}" transform="rotate(-90 15 {h / 2})" text-anchor="middle">{ylabel}</text>']
    for i, (label, v) in enumerate(bars):
        bh = v / top * (h - 2 * m)
        x = m + i * bw + bw * 0.15
        out.append(f'<rect x="{x:.1f}" y="{h - m - bh:.1f}" width="{bw * 0.7:.1f}" height="{bh:.1f}" fill="#1f77b4"/>')
        out.append(f'<text x="{x + bw * 0.35:.1f}" y="{h - m - bh - 5:.1f}" text-anchor="middle">{v:,.0f}</text>')
        out.append(f'<text x="{x + bw * 0.35:.1f}" y="{h - m + 15}" text-anchor="middle">{label}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--smoke", action="store_true")
    a = p.parse_args()
    suffix = "-smoke" if a.smoke else ""
    e2e = load("e2e", a.smoke)
    if e2e:
        print("### End to end\n")
        e2e_table(e2e)
        sat = [r for r in e2e["runs"] if r.get("mode") == "saturation"]
        best = {}
        for r in sat:
            key = (r["record_size"], r.get("allocator", "system"), r.get("completion", "callback"))
            best[key] = max(best.get(key, 0), r["records_per_s"])
        svg_bars(os.path.join(RESULTS, f"e2e-throughput{suffix}.svg"),
                 "Shardline -> emulator, user records/s (limits off, 2 cores shared)",
                 [(f"{size} B, {alloc}, {completion}", v)
                  for (size, alloc, completion), v in sorted(best.items())],
                 "user records/s")
        print()
    util = load("utilisation", a.smoke)
    if util:
        print("### Shard utilisation (limits on)\n")
        util_table(util)
        print()
    mem = load("memory", a.smoke)
    if mem:
        print("### Memory under a dead endpoint\n")
        memory_table(mem)
        series = [(r["harness"], [(t, mib(b)) for t, b in r["rss_timeline"]]) for r in mem["runs"]]
        cap = mib(mem["runs"][0]["buffer_cap_bytes"]) if mem["runs"] else None
        svg_lines(os.path.join(RESULTS, f"memory-dead-endpoint{suffix}.svg"),
                  "RSS of the producer process tree, endpoint refusing connections",
                  series, "seconds", "MiB", hline=cap)
        print()
    py = load("python", a.smoke)
    if py:
        print("### Python\n")
        python_table(py)
        print()


if __name__ == "__main__":
    main()
