#!/usr/bin/env python3
"""Driver for Shardline's end-to-end benchmarks (issue #8).

Starts the emulator as its own process (`shardline-emulator`), runs a
harness (Rust `shardline-load`, the Java KPL harness in benches/kpl, or a
Python script) as another, samples the harness's whole process tree
(/proc: CPU ticks and RSS of every descendant, every 50 ms) and reads the
emulator's counters before and after. Results go to
benches/results/<suite>.json (one object per run); `benches/plot.py` turns
them into tables and plots.

    python3 benches/run.py e2e            # (2) throughput, CPU, RSS, latency
    python3 benches/run.py utilisation    # (5) limits on, 2x capacity
    python3 benches/run.py kpl            # (3) Shardline vs KPL, alternating
    python3 benches/run.py python         # (4) Python bindings vs boto3
    python3 benches/run.py memory         # (6) dead endpoint, RSS over time
    python3 benches/run.py c              # the C ABI vs the Rust API
    python3 benches/run.py emulator --emulators OLD,NEW   # emulator builds, alternated
    python3 benches/run.py all
    add --smoke for tiny inputs (benches/smoke.sh does that)

Build first: cargo build --release -p shardline-emulator -p shardline-benches
(for C also -p shardline-ffi) and (for KPL) mvn -q -f benches/kpl/pom.xml package. `--bin-dir DIR` (or
SHARDLINE_BIN_DIR) runs other builds, e.g. target/debug for a smoke run.
"""

import argparse
import json
import os
import glob
import signal
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
# Where shardline-emulator and shardline-load are: the release builds unless
# --bin-dir (or SHARDLINE_BIN_DIR) says otherwise; CI's smoke run uses the
# debug builds its test step has made already.
BIN_DIR = os.environ.get("SHARDLINE_BIN_DIR", os.path.join(TARGET, "release"))
EMULATOR = os.path.join(BIN_DIR, "shardline-emulator")
LOAD = os.path.join(BIN_DIR, "shardline-load")
# The same harness with mimalloc as the process's allocator (e2e only).
LOAD_MIMALLOC = os.path.join(BIN_DIR, "shardline-load-mimalloc")
KPL_DIR = os.path.join(ROOT, "benches", "kpl")
RESULTS = os.path.join(ROOT, "benches", "results")
PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")
SHARD_BYTES = 1 << 20
SHARD_RECORDS = 1000


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


# ---------------------------------------------------------------- processes


def children_map():
    kids = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                s = f.read()
        except OSError:
            continue
        rest = s.rsplit(")", 1)[1].split()
        pid = int(stat.split("/")[2])
        kids.setdefault(int(rest[1]), []).append(pid)
    return kids


def tree(pid):
    kids = children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def proc_cpu_rss(pid):
    """(cpu seconds, rss bytes) of one process, or None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/statm") as f:
            rss = int(f.read().split()[1]) * PAGE
    except (OSError, IndexError):
        return None
    return (int(rest[11]) + int(rest[12])) / TICK, rss


class TreeSampler(threading.Thread):
    """Samples a process tree: peak summed RSS, CPU per pid (last seen)."""

    def __init__(self, pid, every=0.05, timeline=False):
        super().__init__(daemon=True)
        self.pid, self.every, self.keep_timeline = pid, every, timeline
        self.cpu = {}
        self.peak_rss = 0
        self.timeline = []
        self.stop_flag = threading.Event()
        self.t0 = time.monotonic()

    def sample(self):
        total = 0
        for p in tree(self.pid):
            v = proc_cpu_rss(p)
            if v is None:
                continue
            self.cpu[p] = max(self.cpu.get(p, 0.0), v[0])
            total += v[1]
        self.peak_rss = max(self.peak_rss, total)
        if self.keep_timeline:
            self.timeline.append((round(time.monotonic() - self.t0, 3), total))

    def run(self):
        while not self.stop_flag.is_set():
            self.sample()
            time.sleep(self.every)

    def stop(self):
        self.stop_flag.set()
        self.join()

    def cpu_seconds(self):
        return sum(self.cpu.values())


class Emulator:
    def __init__(self, limits=False, shards=4, stream="s", binary=None):
        args = [binary or EMULATOR, "--port", "0", "--tls-port", "0", "--retain", "0",
                "--stream", f"{stream}:{shards}", "--exit-on-stdin-close"]
        if not limits:
            args.append("--no-limits")
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.http = self.https = None
        while self.http is None or self.https is None:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("emulator exited before listening")
            url = line.split()[-1]
            if url.startswith("https://"):
                self.https = url
            elif url.startswith("http://"):
                self.http = url
        self.https_port = int(self.https.rsplit(":", 1)[1])
        self.stream = stream

    def stats(self):
        with urllib.request.urlopen(self.http + "/_emulator/stats") as r:
            s = json.load(r)
        st = s["streams"].get(self.stream, {})
        return {k: st.get(k, 0) for k in ("accepted_records", "accepted_bytes", "throttled_records")}

    def cpu(self):
        v = proc_cpu_rss(self.proc.pid)
        return v[0] if v else 0.0

    def close(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except Exception:
            self.proc.kill()


def delta(a, b):
    return {k: b[k] - a[k] for k in a}


def run_harness(cmd, emu=None, timeline=False, env=None, timeout=600):
    """Runs one harness command; returns its JSON line merged with the
    process-tree figures and the emulator's counters for the run."""
    before = emu.stats() if emu else None
    emu_cpu0 = emu.cpu() if emu else 0.0
    load0 = loadavg()
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)
    sampler = TreeSampler(proc.pid, timeline=timeline)
    sampler.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise RuntimeError(f"harness timed out: {' '.join(cmd)}\n{err[-2000:]}")
    finally:
        sampler.stop()
    elapsed = time.monotonic() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"harness failed ({proc.returncode}): {' '.join(cmd)}\n{err[-3000:]}")
    lines = [l for l in out.splitlines() if l.startswith("{")]
    if not lines:
        raise RuntimeError(f"harness printed no result: {' '.join(cmd)}\n{out[-2000:]}\n{err[-2000:]}")
    result = json.loads(lines[-1])
    result["tree_cpu_s"] = round(sampler.cpu_seconds(), 3)
    result["tree_peak_rss_bytes"] = sampler.peak_rss
    result["process_elapsed_s"] = round(elapsed, 3)
    result["loadavg_before"] = load0
    result["loadavg_after"] = loadavg()
    delivered = result.get("delivered", 0)
    if delivered:
        result["tree_cpu_s_per_million"] = round(sampler.cpu_seconds() / delivered * 1e6, 3)
    if emu:
        d = delta(before, emu.stats())
        result["emulator"] = d
        result["emulator_cpu_s"] = round(emu.cpu() - emu_cpu0, 3)
        size = result.get("record_size", 0)
        if delivered and size:
            # Read-back check: the emulator must have stored at least the
            # user data the harness saw acknowledged (aggregates add framing).
            result["readback_bytes_ratio"] = round(d["accepted_bytes"] / (delivered * size), 4)
            result["readback_ok"] = d["accepted_bytes"] >= delivered * size
    if timeline:
        result["rss_timeline"] = sampler.timeline
    result["stderr_tail"] = err[-500:] if err else ""
    return result


def kpl_cmd(port, extra):
    jar = os.path.join(KPL_DIR, "target", "kpl-bench-0.1.0.jar")
    cp = jar + ":" + os.path.join(KPL_DIR, "target", "lib", "*")
    return ["java", "-Xmx1g", "-cp", cp, "shardline.bench.KplLoad", "--port", str(port)] + extra


def save(name, runs, smoke):
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, f"{name}{'-smoke' if smoke else ''}.json")
    with open(path, "w") as f:
        json.dump({"suite": name, "smoke": smoke, "machine": machine(), "runs": runs}, f, indent=1)
    log(f"wrote {path}")


def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"nproc": os.cpu_count(), "cpu": cpu, "loadavg": loadavg(),
            "kernel": os.uname().release}


def brief(r):
    keys = ("harness", "allocator", "completion", "label", "record_size", "delivered", "failed", "records_per_s", "mb_per_s",
            "tree_cpu_s", "emulator_cpu_s", "tree_peak_rss_bytes", "latency_us_p50",
            "latency_us_p99", "readback_ok")
    return {k: r.get(k) for k in keys if k in r}


# ------------------------------------------------------------------- suites

SIZES = [100, 1024, 10240]
# Enough records for ~5-10 s at the expected rates, ~1 GB at most.
E2E_RECORDS = {100: 3_000_000, 1024: 600_000, 10240: 60_000}


def suite_e2e(a):
    runs = []
    emu = Emulator(limits=False)
    try:
        for size in SIZES:
            n = 20_000 if a.smoke else E2E_RECORDS[size]
            best = 0.0
            for rep in range(a.reps):
                # Alternate the variants within each repetition, so all
                # see the same machine: completions to one handler (the
                # default) with each allocator, and a boxed callback per
                # record with the system allocator.
                for load, completion in ((LOAD, "handler"), (LOAD_MIMALLOC, "handler"),
                                         (LOAD, "callback")):
                    r = run_harness([load, "--endpoint", emu.http, "--record-size", str(size),
                                     "--records", str(n), "--no-rate-limit",
                                     "--completion", completion,
                                     "--label", f"saturate rep{rep}"], emu)
                    r["mode"] = "saturation"
                    log(brief(r))
                    runs.append(r)
                    if load == LOAD and completion == "handler":
                        best = max(best, r["records_per_s"])
            rate = max(1000.0, best * 0.5)
            secs = 2 if a.smoke else 8
            r = run_harness([LOAD, "--endpoint", emu.http, "--record-size", str(size),
                             "--records", str(int(rate * secs)), "--rate", str(rate),
                             "--no-rate-limit", "--label", "latency at 50%"], emu)
            r["mode"] = "latency"
            log(brief(r))
            runs.append(r)
    finally:
        emu.close()
    save("e2e", runs, a.smoke)
    return runs


def record_sizes(a, default):
    return [int(x) for x in a.sizes.split(",")] if a.sizes else default


def suite_kpl(a):
    runs = []
    emu = Emulator(limits=False)
    sizes = [100] if a.smoke else record_sizes(a, SIZES)
    try:
        for size in sizes:
            # Other sizes: 300 MB of records a run, as at 10 KiB.
            n = 5_000 if a.smoke else {100: 500_000, 1024: 200_000, 10240: 30_000}.get(
                size, 300_000_000 // size)
            for rep in range(a.reps):
                for who in ("shardline", "kpl"):
                    if who == "shardline":
                        cmd = [LOAD, "--endpoint", emu.https, "--record-size", str(size),
                               "--records", str(n), "--no-rate-limit",
                               "--label", f"https rep{rep}"]
                    else:
                        # RateLimit in percent of the shard quota: lifted, as
                        # Shardline's is, since the emulator has no limits.
                        cmd = kpl_cmd(emu.https_port, ["--record-size", str(size), "--records",
                                                       str(n), "--rate-limit", "100000",
                                                       "--label", f"https rep{rep}"])
                    r = run_harness(cmd, emu)
                    log(brief(r))
                    runs.append(r)
    finally:
        emu.close()
    save("kpl", runs, a.smoke)
    return runs


def suite_utilisation(a):
    """Limits on: 4 shards fed at 2x capacity (8 MiB/s of 1 KiB records,
    split evenly between the producers) for 30 s."""
    runs = []
    secs = 4 if a.smoke else 30
    size = 1024
    shards = 4
    capacity = shards * SHARD_BYTES
    total_rate = 2 * capacity / (size + 36)  # records/s, data + key billed
    emu = Emulator(limits=True, shards=shards)
    try:
        for who in a.who.split(","):
            for producers in (1, 3):
                time.sleep(2)  # let the emulator's one-second windows empty
                rate = total_rate / producers
                if who == "shardline":
                    cmd = [LOAD, "--endpoint", emu.http, "--record-size", str(size),
                           "--seconds", str(secs), "--records", "0", "--rate", str(rate),
                           "--flush-timeout", "60"]
                else:
                    cmd = kpl_cmd(emu.https_port, ["--record-size", str(size), "--seconds",
                                                   str(secs), "--rate", str(rate)])
                before = emu.stats()
                t0 = time.monotonic()
                results = [None] * producers
                errors = []

                def go(i):
                    try:
                        results[i] = run_harness(cmd + ["--label", f"{producers}p #{i}"], None)
                    except Exception as e:  # reported below
                        errors.append(e)

                threads = [threading.Thread(target=go, args=(i,)) for i in range(producers)]
                for t in threads:
                    t.start()
                # Steady state: from WARM_UP seconds on (start-up of the
                # process, the first cuts) to the end of the window.
                warm_up = min(5, secs / 2)
                time.sleep(max(0.0, warm_up - (time.monotonic() - t0)))
                warm = emu.stats()
                t_warm = time.monotonic()
                # The offered-load window: snapshot the emulator when sending ends.
                time.sleep(max(0.0, secs - (time.monotonic() - t0)))
                after = emu.stats()
                t_end = time.monotonic()
                window = delta(before, after)
                window_s = t_end - t0
                for t in threads:
                    t.join()
                if errors:
                    raise errors[0]
                total = delta(before, emu.stats())
                steady = delta(warm, after)
                steady_s = t_end - t_warm
                r = {
                    "harness": who, "producers": producers, "seconds": secs,
                    "offered_records_per_s": total_rate, "record_size": size,
                    "window_s": round(window_s, 3),
                    "window": window, "total": total,
                    "delivered_mib_per_s": window["accepted_bytes"] / window_s / 2**20,
                    "utilisation": window["accepted_bytes"] / window_s / capacity,
                    "throttled_per_delivered": (window["throttled_records"]
                                                / max(1, window["accepted_records"])),
                    "steady_state_from_s": warm_up,
                    "steady_utilisation": steady["accepted_bytes"] / steady_s / capacity,
                    "steady_throttled_per_delivered": (steady["throttled_records"]
                                                       / max(1, steady["accepted_records"])),
                    "throttled_per_delivered_total": (total["throttled_records"]
                                                      / max(1, total["accepted_records"])),
                    "per_producer": [brief(x) | {"producer": x.get("producer")} for x in results],
                    "loadavg": loadavg(),
                }
                log({k: r[k] for k in ("harness", "producers", "utilisation",
                                        "throttled_per_delivered", "delivered_mib_per_s",
                                        "steady_utilisation", "steady_throttled_per_delivered")})
                runs.append(r)
    finally:
        emu.close()
    save("utilisation", runs, a.smoke)
    return runs


def suite_memory(a):
    """Dead endpoint (connection refused): RSS over time with a buffer cap."""
    runs = []
    secs = 3 if a.smoke else 60
    cap = 64 << 20
    size = 100
    per_record = size + 36 + 128  # what Shardline counts against the cap
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead_port = s.getsockname()[1]
    s.close()  # nothing listens there now: connection refused
    # The KPL's daemon dies when STS does not answer at start (it builds the
    # stream ARN from the account), so a live emulator answers STS for it
    # while Kinesis stays dead.
    sts = Emulator(limits=False) if "kpl" in a.who.split(",") else None
    for who in a.who.split(","):
        if who == "shardline":
            cmd = [LOAD, "--endpoint", f"http://127.0.0.1:{dead_port}", "--record-size", str(size),
                   "--seconds", str(secs), "--records", "0", "--max-buffered-bytes", str(cap),
                   "--flush-timeout", "1", "--label", "dead endpoint"]
            if a.smoke:
                # A sender blocked at the cap waits for records to expire:
                # keep that short (the default TTL is 30 s).
                cmd += ["--record-ttl", "2"]
        else:
            cmd = kpl_cmd(dead_port, ["--record-size", str(size), "--seconds", str(secs),
                                      "--sts-port", str(sts.https_port),
                                      "--max-outstanding", str(cap // per_record),
                                      "--label", "dead endpoint"])
        r = run_harness(cmd, None, timeline=True, timeout=secs + 120)
        r["buffer_cap_bytes"] = cap
        r["peak_rss_above_cap_mib"] = (r["tree_peak_rss_bytes"] - cap) / 2**20
        log(brief(r) | {"above_cap_mib": r["peak_rss_above_cap_mib"]})
        runs.append(r)
    if sts:
        sts.close()
    save("memory", runs, a.smoke)
    return runs


def suite_python(a):
    script = os.path.join(ROOT, "benches", "python", "bench_python.py")
    py = a.python or os.path.join(ROOT, ".venv", "bin", "python")
    runs = []
    emu = Emulator(limits=False)
    # At ~1 M records/s a run must be long enough that the final flush
    # and the producer's first requests are a small part of it.
    n = 2_000 if a.smoke else 1_000_000
    try:
        for rep in range(a.reps):
            for mode in ("put_many", "put", "boto3_put_records", "boto3_agg"):
                m = n if mode.startswith("put") else n // 10
                r = run_harness([py, script, "--endpoint", emu.http, "--mode", mode,
                                 "--records", str(m), "--record-size", "100"], emu)
                r["rep"] = rep
                log(brief(r) | {"mode": mode})
                runs.append(r)
    finally:
        emu.close()
    save("python", runs, a.smoke)
    return runs


def suite_c(a):
    """The C ABI (benches/c/bench_c.c, linked against libshardline.a from
    the same directory as the binaries) alternated with shardline-load (the
    Rust API) on the same workload: 100 B records from one thread."""
    lib = os.path.join(os.path.dirname(LOAD), "libshardline.a")
    if not os.path.exists(lib):
        sys.exit(f"{lib} is missing: cargo build --release -p shardline-ffi")
    exe = os.path.join(TARGET, "bench_c")
    # The flags and system libraries of ffi/run-c-tests.sh.
    subprocess.run(["cc", "-std=c11", "-D_POSIX_C_SOURCE=200809L", "-O2", "-Wall", "-Wextra",
                    "-Werror", "-I", os.path.join(ROOT, "ffi", "include"),
                    os.path.join(ROOT, "benches", "c", "bench_c.c"), "-o", exe, lib,
                    "-Wl,--gc-sections", "-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl",
                    "-lc"], check=True)
    runs = []
    emu = Emulator(limits=False)
    n = 5_000 if a.smoke else 1_000_000
    try:
        for rep in range(a.reps):
            for who in ("c", "rust"):
                if who == "c":
                    cmd = [exe, emu.http, str(n), "100"]
                else:
                    cmd = [LOAD, "--endpoint", emu.http, "--record-size", "100", "--records",
                           str(n), "--no-rate-limit", "--label", "rust"]
                r = run_harness(cmd, emu)
                r["rep"] = rep
                log(brief(r))
                runs.append(r)
    finally:
        emu.close()
    save("c", runs, a.smoke)
    return runs


def suite_emulator(a):
    """Emulator builds alternated under the same `shardline-load` run
    (--emulators A,B,...; default: this build alone): the emulator's CPU
    per user record, which the producer's share of the two cores depends
    on. Used for the emulator's decoding round in BENCHMARKS.md."""
    binaries = a.emulators.split(",") if a.emulators else [EMULATOR]
    sizes = [100] if a.smoke else record_sizes(a, [100, 10240])
    runs = []
    for size in sizes:
        n = 5_000 if a.smoke else E2E_RECORDS.get(size, 100_000)
        for rep in range(a.reps):
            for binary in binaries:
                emu = Emulator(limits=False, binary=binary)
                try:
                    r = run_harness([LOAD, "--endpoint", emu.http, "--record-size", str(size),
                                     "--records", str(n), "--no-rate-limit",
                                     "--label", binary], emu)
                finally:
                    emu.close()
                r["rep"] = rep
                r["emulator_binary"] = binary
                r["emulator_cpu_us_per_record"] = round(r["emulator_cpu_s"] / n * 1e6, 3)
                log(f"{binary}: {size} B, {r['records_per_s']:,.0f} records/s, "
                    f"emulator {r['emulator_cpu_us_per_record']} CPU us/record")
                runs.append(r)
    save("emulator", runs, a.smoke)
    return runs


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("suite", choices=["e2e", "kpl", "utilisation", "memory", "python", "c",
                                     "emulator", "all"])
    p.add_argument("--smoke", action="store_true", help="tiny inputs (CI)")
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--who", default="shardline,kpl", help="utilisation/memory: which producers")
    p.add_argument("--python", help="interpreter with shardline, boto3, aws-kinesis-agg")
    p.add_argument("--emulators", help="emulator: comma-separated emulator binaries to alternate")
    p.add_argument("--sizes", help="kpl, emulator: record sizes, comma-separated "
                   "(default: kpl 100,1024,10240; emulator 100,10240)")
    p.add_argument("--bin-dir", help="directory with shardline-emulator and shardline-load "
                   "(default: $SHARDLINE_BIN_DIR, else target/release)")
    a = p.parse_args()
    if a.bin_dir:
        global EMULATOR, LOAD, LOAD_MIMALLOC
        EMULATOR = os.path.join(a.bin_dir, "shardline-emulator")
        LOAD = os.path.join(a.bin_dir, "shardline-load")
        LOAD_MIMALLOC = os.path.join(a.bin_dir, "shardline-load-mimalloc")
    for binary in (EMULATOR, LOAD) + ((LOAD_MIMALLOC,) if a.suite in ("e2e", "all") else ()):
        if a.suite != "python" and not os.access(binary, os.X_OK):
            sys.exit(f"{binary} is missing: build it first (see the docstring) or pass --bin-dir")
    log(f"machine: {machine()}")
    suites = {"e2e": suite_e2e, "kpl": suite_kpl, "utilisation": suite_utilisation,
              "memory": suite_memory, "python": suite_python, "c": suite_c,
              "emulator": suite_emulator}
    for name in (suites if a.suite == "all" else [a.suite]):
        suites[name](a)


if __name__ == "__main__":
    main()
