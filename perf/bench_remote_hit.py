#!/usr/bin/env python3
"""Remote hits end to end, with real processes: what a data loader attached
to its node's pagemeshd gets for pages that another peer holds.

One owner pagemeshd holds every page of a dataset (objects of 64 KiB and
of 1 MiB, one page each, on a local S3 server, read through it once). For
each transport (tcp with page bytes encrypted, tcp with --insecure-data,
fabric with FI_PROVIDER=tcp) a fresh client pagemeshd joins with no disk
capacity, so it owns nothing, and a reader process (perf/epoch_reader)
attached to it reads every object once: each read is a remote hit (reader
-> its node peer -> the owner -> back, page verified, kept in the client's
RAM). Before the timed reads the same reader reads `--warmup` other objects
of the size, untimed, as a data loader in its steady state would have: a
process's first pages through its node fill its landing area, and the
client's RAM tier (sized to hold the warm-up pages) for the first time;
the timed pages then reuse memory both have touched before, as they would
on a node that has run for a while (a fresh 2 MiB of RAM tier costs ~2.3
ms on first touch on the VM we measured, ~64 µs reused). The ceiling is perf/epoch_loopback: a plain TCP request/response
loop of the same size between two threads, measured in the same run.
Each cell is run `--rounds` times with a new client peer and the best
round is reported (a shared machine only adds slowness). Every byte read
is checked against the source.

usage: perf/bench_remote_hit.py [--objects N] [--warmup N] [--rounds R]
                                [--build DIR]
Prints a Markdown table and the ratio to the goal (0.7 of the ceiling).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "tests")]

from harness.mesh import Mesh  # noqa: E402
from harness.pagemesh_cli import PagemeshCLI, stop  # noqa: E402
from harness.s3server import S3Server  # noqa: E402
from harness.util import free_port  # noqa: E402

BUCKET = "remote-hit-bench"
SIZES = (64 << 10, 1 << 20)
GOAL = 0.7
TRANSPORTS = (("tcp encrypted", ["--transport", "tcp"], {}),
              ("tcp insecure_data", ["--transport", "tcp",
                                     "--insecure-data"], {}),
              ("fabric (tcp provider)", ["--transport", "fabric"],
               {"FI_PROVIDER": "tcp"}))


class Reader:
    """perf/epoch_reader attached to a cache directory."""

    def __init__(self, build, cache_dir, env):
        self.proc = subprocess.Popen(
            [os.path.join(build, "perf", "epoch_reader"), "pm", cache_dir,
             "s3://%s/" % BUCKET],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env=env)
        if self.proc.stdout.readline().strip() != "READY":
            raise RuntimeError("epoch_reader did not start")

    def _send(self, text):
        self.proc.stdin.write(text)
        self.proc.stdin.flush()

    def _results(self):
        rows = []
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("epoch_reader died")
            if line.startswith("END"):
                return rows, [int(x) for x in line.split()[1:]]
            rows.append(line.split())

    def meta(self, keys):
        self._send("META %d\n%s" % (len(keys), "".join(k + "\n"
                                                        for k in keys)))
        rows, _ = self._results()
        if rows:
            raise RuntimeError("metadata: %s" % " ".join(rows[0]))

    def epoch(self, keys, size):
        self._send("EPOCH 1 %d\n%s" % (len(keys), "".join(
            "%s\t0\t%d\n" % (k, size) for k in keys)))
        rows, (start, end) = self._results()
        return rows, start, end

    def close(self):
        self._send("QUIT\n")
        self.proc.wait(timeout=30)


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def loopback(build, size, seconds=2):
    r = subprocess.run([os.path.join(build, "perf", "epoch_loopback"),
                        str(size), "1", str(seconds)], capture_output=True,
                       text=True, check=True, timeout=120)
    return json.loads(r.stdout)


def xxh3_64(data):
    """What epoch_reader prints for the bytes it read."""
    import xxhash
    return "%016x" % xxhash.xxh3_64_intdigest(data)


def run_cell(build, root, owner, env, keys, warm_keys, size, expected, args,
             extra_env, tag):
    cli = PagemeshCLI(build, os.path.join(root, tag), dict(env,
                                                            **extra_env))
    client = cli.start_daemon(
        "--listen", "127.0.0.1:%d" % free_port(), "--seeds", owner.addr(0),
        "--cluster-key-file", owner.key, "--disk-capacity", "0",
        "--ram-capacity", str(max(16 << 20, size * len(warm_keys))),
        "--log-file", os.path.join(root, tag + ".log"), *args)
    try:
        owner.wait_members(2, timeout=60)
        reader = Reader(build, cli.cache_dir, dict(env, **extra_env))
        try:
            reader.meta(keys + warm_keys)
            if warm_keys:
                reader.epoch(warm_keys, size)
            rows, start, end = reader.epoch(keys, size)
        finally:
            reader.close()
    finally:
        stop(client)
    lat = []
    for key, row in zip(keys, rows):
        if row[0] == "E":
            raise RuntimeError("%s: read failed: %s" % (key, " ".join(row)))
        if int(row[1]) != size or row[2] != expected[key]:
            raise RuntimeError("%s: wrong bytes read" % key)
        lat.append(int(row[0]))
    seconds = (end - start) / 1e9
    return {"mb_per_s": len(keys) * size / seconds / 1e6,
            "p50_us": percentile(lat, 0.5) / 1e3,
            "p99_us": percentile(lat, 0.99) / 1e3}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--objects", type=int, default=64)
    ap.add_argument("--warmup", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="pm-remote-hit-")
    table = []
    try:
        with S3Server() as s3:
            s3.create_bucket(BUCKET)
            data = {}
            for size in SIZES:
                for i in range(a.objects):
                    data["s%d/o%d" % (size, i)] = os.urandom(size)
                for i in range(a.warmup):
                    data["w%d/o%d" % (size, i)] = os.urandom(size)
            s3.put_objects(BUCKET, data)
            expected = {k: xxh3_64(v) for k, v in data.items()}
            env = dict(os.environ, **s3.env())
            env_fabric = dict(env, FI_PROVIDER="tcp")
            # The owner speaks both: tcp clients reach it over tcp, fabric
            # clients over fabric. It accepts page bytes in the clear: tcp
            # sends them so only when both ends ask, so the encrypted
            # client's row stays encrypted and the insecure_data one is in
            # the clear (without it, that row was encrypted too).
            os.makedirs(os.path.join(root, "owner"))
            owner = Mesh(a.build, os.path.join(root, "owner"), 1,
                         env=env_fabric,
                         extra_args=["--disk-capacity", "4G",
                                     "--ram-capacity", "256M",
                                     "--transport", "fabric",
                                     "--insecure-data"])
            owner.start_all()
            try:
                owner.wait_members(1, timeout=60)
                for size in SIZES:
                    keys = ["s%d/o%d" % (size, i) for i in range(a.objects)]
                    warm_keys = ["w%d/o%d" % (size, i)
                                 for i in range(a.warmup)]
                    warm = Reader(a.build, owner.cache_dir(0), env_fabric)
                    warm.meta(keys + warm_keys)
                    warm.epoch(keys + warm_keys, size)
                    warm.close()
                    ceiling = loopback(a.build, size)
                    table.append((size, "raw loopback", ceiling, 1.0))
                    for name, args, extra in TRANSPORTS:
                        best = None
                        for r in range(a.rounds):
                            tag = "c-%d-%s-%d" % (size, name.split()[0] +
                                                  str(len(args)), r)
                            res = run_cell(a.build, root, owner, env, keys,
                                           warm_keys, size, expected, args,
                                           extra, tag)
                            if not best or res["mb_per_s"] > best["mb_per_s"]:
                                best = res
                        table.append((size, name, best, best["mb_per_s"] /
                                      ceiling["mb_per_s"]))
                        print("  %4d KiB %-22s %7.0f MB/s" % (
                            size >> 10, name, best["mb_per_s"]),
                            file=sys.stderr, flush=True)
            finally:
                owner.stop_all()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("Remote hits through an attached reader, one read at a time, "
          "best of %d rounds, %d objects per cell after %d untimed.\n" % (
              a.rounds, a.objects, a.warmup))
    print("| read | path | MB/s | p50 µs | p99 µs | vs ceiling |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    worst = {}
    for size, name, r, ratio in table:
        print("| %d KiB | %s | %.0f | %.0f | %.0f | %.2f |" % (
            size >> 10, name, r["mb_per_s"], r["p50_us"], r["p99_us"],
            ratio))
        if name != "raw loopback":
            worst[name] = min(worst.get(name, 9e9), ratio)
    print()
    for name, ratio in worst.items():
        print("Goal >= %.1f of the ceiling: %s %s (worst %.2f)" % (
            GOAL, name, "PASS" if ratio >= GOAL else "FALLS SHORT", ratio))


if __name__ == "__main__":
    main()
