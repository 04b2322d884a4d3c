#!/usr/bin/env python3
"""Per-second view of the utilisation benchmark: starts N `shardline-load`
producers feeding a running emulator's 4-shard stream `s` at 2x capacity
(1 KiB records), and prints, every second, each shard's accepted MiB,
accepted aggregates and throttled aggregates from the emulator's counters,
then the whole run's utilisation and throttled / delivered.

    python3 benches/probe_utilisation.py --producers 3 --seconds 30

starts its own emulator (limits on, as `run.py utilisation` does); `--port`
uses a running one instead, e.g. one started with
`target/release/shardline-emulator --port 4599 --retain 0 --stream s:4`.
Binaries: target/release, or $SHARDLINE_BIN_DIR (as for run.py).

Each line: one `MiB/accepted/throttled` triple per shard, in shard order.
"""
import argparse
import json
import subprocess
import time
import urllib.request

import run  # benches/run.py: the emulator wrapper and the binaries' paths

SHARD_BYTES = 1 << 20


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, help="a running emulator's HTTP port (default: start one)")
    p.add_argument("--producers", type=int, default=1)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--load", default=run.LOAD)
    a = p.parse_args()
    emulator = None if a.port else run.Emulator(limits=True, shards=4)
    endpoint = f"http://127.0.0.1:{a.port}" if a.port else emulator.http
    try:
        probe(a, endpoint)
    finally:
        if emulator:
            emulator.close()


def probe(a, endpoint):
    def stats():
        return json.load(urllib.request.urlopen(endpoint + "/_emulator/stats"))["streams"]["s"]

    shards = len(stats()["shards"])
    rate = 2 * shards * SHARD_BYTES / (1024 + 36) / a.producers
    procs = [subprocess.Popen([a.load, "--endpoint", endpoint,
                               "--record-size", "1024", "--seconds", str(a.seconds),
                               "--records", "0", "--rate", str(rate), "--flush-timeout", "60"],
                              stdout=subprocess.DEVNULL)
             for _ in range(a.producers)]
    t0 = time.monotonic()
    first = prev = cur = stats()
    try:
        while time.monotonic() - t0 < a.seconds:
            time.sleep(1.0)
            cur = stats()
            cells = []
            for sid, shard in sorted(cur["shards"].items()):
                before = prev["shards"][sid]
                cells.append(f"{(shard['accepted_bytes'] - before['accepted_bytes']) / SHARD_BYTES:.3f}/"
                             f"{shard['accepted_records'] - before['accepted_records']}/"
                             f"{shard['throttled_records'] - before['throttled_records']}")
            print(" ".join(cells), flush=True)
            prev = cur
        elapsed = time.monotonic() - t0
        utilisation = (cur["accepted_bytes"] - first["accepted_bytes"]) / elapsed / (shards * SHARD_BYTES)
        throttled = ((cur["throttled_records"] - first["throttled_records"])
                     / max(1, cur["accepted_records"] - first["accepted_records"]))
        print(f"utilisation {utilisation:.4f} throttled/delivered {throttled:.4f}")
        if utilisation <= 0:
            raise SystemExit("the emulator accepted nothing")
    finally:
        for proc in procs:
            proc.wait()


if __name__ == "__main__":
    main()
