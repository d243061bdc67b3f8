#!/usr/bin/env python3
"""The main job on an embedded default: a local S3-compatible server
(moto, SigV4 on) behind a proxy that makes it behave like remote object
storage (time to first byte, bandwidth cap) and counts what reaches it; a
generated dataset; and epochs of reading the whole dataset through
pagemesh. Prints, per epoch, the throughput and what the origin served,
next to reading the origin directly.

usage: perf/demo.py [--objects N] [--object-mib M] [--epochs E]
                    [--ttfb-ms MS] [--bandwidth-mbs MBS] [--build DIR]
"""

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [os.path.join(ROOT, "tests"), HERE]

from harness.s3server import S3Server  # noqa: E402
from origin_proxy import OriginProxy  # noqa: E402

BUCKET = "training-data"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--objects", type=int, default=48)
    p.add_argument("--object-mib", type=float, default=2.0)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--ttfb-ms", type=float, default=30.0)
    p.add_argument("--bandwidth-mbs", type=float, default=100.0,
                   help="per-connection cap of the origin, MB/s")
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    return p.parse_args()


def make_dataset(s3, count, size):
    rng = random.Random(2024)
    keys = []
    client = s3.client()
    for i in range(count):
        key = "imagenet-like/train/shard-%04d.bin" % i
        client.put_object(Bucket=BUCKET, Key=key, Body=rng.randbytes(size))
        keys.append(key)
    return keys


def run_epoch(pagemesh, cache_dir, env, uris, extra=()):
    start = time.monotonic()
    proc = subprocess.run([pagemesh, "--cache-dir", cache_dir, *extra, "cat",
                           *uris], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit("pagemesh failed: %s" % proc.stderr.decode())
    return elapsed, len(proc.stdout)


def main():
    args = parse_args()
    pagemesh = os.path.join(args.build, "pagemesh")
    if not os.path.exists(pagemesh):
        sys.exit("no %s: build first (scripts/build.sh)" % pagemesh)
    size = int(args.object_mib * 1024 * 1024)
    work = tempfile.mkdtemp(prefix="pagemesh-demo-")
    print("pagemesh demo: %d objects x %.1f MiB on a local S3 server "
          "(moto, SigV4), origin shaped to %.0f ms to first byte and "
          "%.0f MB/s per connection" % (args.objects, args.object_mib,
                                        args.ttfb_ms, args.bandwidth_mbs))
    with S3Server() as s3:
        s3.create_bucket(BUCKET)
        keys = make_dataset(s3, args.objects, size)
        uris = ["s3://%s/%s" % (BUCKET, k) for k in keys]
        with OriginProxy(s3.endpoint, ttfb_ms=args.ttfb_ms,
                         bandwidth=args.bandwidth_mbs * 1e6) as proxy:
            env = dict(os.environ, PAGEMESH_LOG_LEVEL="warn",
                       **s3.env(endpoint=proxy.url))
            cache = os.path.join(work, "cache")
            rows = []
            proxy.reset_stats()
            t, n = run_epoch(pagemesh, cache, env, uris, ["--no-cache"])
            rows.append(("origin direct", t, n, proxy.stats()))
            for epoch in range(1, args.epochs + 1):
                proxy.reset_stats()
                t, n = run_epoch(pagemesh, cache, env, uris)
                rows.append(("pagemesh epoch %d" % epoch, t, n,
                             proxy.stats()))
            report(rows)
            stats = subprocess.run([pagemesh, "--cache-dir", cache, "stats"],
                                   env=env, capture_output=True, text=True)
            print("\nwhat the cache did (pagemesh stats):")
            print(stats.stdout)
    shutil.rmtree(work, ignore_errors=True)


def report(rows):
    print("\n| pass | seconds | MB/s | origin requests | origin MB |")
    print("|---|---|---|---|---|")
    direct = rows[0][1]
    for name, seconds, nbytes, st in rows:
        requests = sum(st["requests"].values())
        print("| %s | %.2f | %.0f | %d | %.1f |" % (
            name, seconds, nbytes / seconds / 1e6, requests,
            st["get_bytes"] / 1e6))
    warm = rows[-1][1]
    print("\nwarm epoch vs origin direct: %.1fx faster, %s origin bytes" % (
        direct / warm, "zero" if rows[-1][3]["get_bytes"] == 0 else
        "%d" % rows[-1][3]["get_bytes"]))


if __name__ == "__main__":
    main()
