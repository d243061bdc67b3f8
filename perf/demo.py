#!/usr/bin/env python3
"""The main job on an embedded default: a local S3-compatible server
(moto, SigV4 on) behind a proxy that makes it behave like remote object
storage (time to first byte, bandwidth cap) and counts what reaches it; a
generated dataset; and epochs of reading it through pagemesh. Prints, per
epoch, the throughput and what the origin served, next to reading the
origin directly. Two pipelines:

1. the `pagemesh` command reading every object of a sharded dataset;
2. a PyArrow training input pipeline: a Parquet dataset (several files and
   row groups) read with a column projection through the pagemesh fsspec
   filesystem (the Python package in bindings/python), next to PyArrow's
   own S3 filesystem reading the origin directly.

usage: perf/demo.py [--objects N] [--object-mib M] [--epochs E]
                    [--parquet-files N] [--parquet-rows N]
                    [--ttfb-ms MS] [--bandwidth-mbs MBS] [--build DIR]
                    [--skip-cli] [--skip-python]
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
sys.path[:0] = [os.path.join(ROOT, "tests"), HERE,
                os.path.join(ROOT, "bindings", "python")]

from harness.s3server import S3Server  # noqa: E402
from harness.mesh import Mesh  # noqa: E402
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
    p.add_argument("--parquet-files", type=int, default=8)
    p.add_argument("--parquet-rows", type=int, default=400_000,
                   help="rows per Parquet file (4 row groups each)")
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--skip-cli", action="store_true",
                   help="only the PyArrow pipeline")
    p.add_argument("--skip-python", action="store_true",
                   help="only the pagemesh command")
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


PEERS = 3


def cli_pipeline(args, s3, proxy, work):
    """Part 1: a local mesh of three pagemeshd peers (R=2, loopback, one
    cluster key) and `pagemesh cat` of every object, each epoch through
    another peer: epoch 1 fills the pages' owners from the origin, later
    epochs are served by the mesh."""
    pagemesh = os.path.join(args.build, "pagemesh")
    size = int(args.object_mib * 1024 * 1024)
    print("\n## 1. a local mesh of %d pagemeshd peers and the pagemesh "
          "command: %d objects x %.1f MiB" % (PEERS, args.objects,
                                              args.object_mib))
    keys = make_dataset(s3, args.objects, size)
    uris = ["s3://%s/%s" % (BUCKET, k) for k in keys]
    env = dict(PAGEMESH_LOG_LEVEL="warn", **s3.env(endpoint=proxy.url))
    mesh = Mesh(args.build, work, count=PEERS, env=env,
                extra_args=["--replicas", "2"])
    full_env = dict(os.environ, **env)
    rows = []
    try:
        mesh.start_all()
        mesh.wait_members(PEERS)
        proxy.reset_stats()
        t, n = run_epoch(pagemesh, mesh.cache_dir(0), full_env, uris,
                         ["--no-cache"])
        rows.append(("origin direct", t, n, proxy.stats()))
        for epoch in range(1, args.epochs + 1):
            peer = (epoch - 1) % PEERS
            proxy.reset_stats()
            t, n = run_epoch(pagemesh, mesh.cache_dir(peer), full_env, uris)
            rows.append(("pagemesh epoch %d (via peer %d)" % (epoch, peer), t,
                         n, proxy.stats()))
        report(rows)
        print("\nwhat the cache did, per peer (pagemesh status):")
        print("| peer | pages on disk | pages in RAM | origin MB | MB from "
              "peers | MB to peers |\n|---|---|---|---|---|---|")
        for i in range(PEERS):
            st = mesh.status(i)["stats"]
            print("| %d | %d | %d | %.1f | %.1f | %.1f |" % (
                i, st["pages_disk"], st["pages_ram"], st["origin_bytes"] / 1e6,
                st["bytes_from_peers"] / 1e6, st["bytes_to_peers"] / 1e6))
    finally:
        mesh.stop_all()


def python_pipeline(args, s3, proxy, work):
    """Part 2: PyArrow reading a Parquet dataset through the pagemesh
    filesystem, with a column projection, epoch after epoch."""
    library = os.path.join(args.build, "libpagemesh.so.0")
    if os.path.exists(library):
        os.environ.setdefault("PAGEMESH_LIBRARY", library)
    print("\n## 2. PyArrow through the pagemesh fsspec filesystem: %d Parquet "
          "files x %d rows x %d columns, reading columns %s"
          % (args.parquet_files, args.parquet_rows, len(PARQUET_COLUMNS),
             ", ".join(PROJECTION)))
    prefix = "parquet/train"
    total = write_parquet_dataset(s3.client(), prefix, args.parquet_files,
                                  args.parquet_rows)
    print("dataset: %.1f MB in s3://%s/%s/" % (total / 1e6, BUCKET, prefix))
    rows = parquet_epochs(s3, proxy, prefix, args.epochs,
                          os.path.join(work, "py-cache"))
    parquet_report(rows, total)


PARQUET_COLUMNS = ("sample_id", "label", "feature_a", "feature_b",
                   "feature_c", "embedding_norm")
PROJECTION = ["sample_id", "label", "feature_a"]


def write_parquet_dataset(client, prefix, files, rows):
    """Parquet files of `rows` rows (4 row groups each) under prefix;
    returns their total size."""
    import io

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    total = 0
    for i in range(files):
        rng = np.random.default_rng(i)
        table = pa.table({
            "sample_id": np.arange(i * rows, (i + 1) * rows, dtype=np.int64),
            "label": rng.integers(0, 1000, rows, dtype=np.int32),
            "feature_a": rng.random(rows, dtype=np.float32),
            "feature_b": rng.standard_normal(rows),
            "feature_c": rng.standard_normal(rows),
            "embedding_norm": rng.random(rows),
        })
        buf = io.BytesIO()
        pq.write_table(table, buf, row_group_size=max(1, rows // 4))
        client.put_object(Bucket=BUCKET, Key="%s/part-%04d.parquet"
                          % (prefix, i), Body=buf.getvalue())
        total += len(buf.getvalue())
    return total


def parquet_epochs(s3, proxy, prefix, epochs, cache_dir):
    """Read the projection of the dataset: once with PyArrow's own S3
    filesystem straight from the origin, then `epochs` times through
    pagemesh. Returns report rows."""
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    import pagemesh
    path = "%s/%s" % (BUCKET, prefix)
    direct = pafs.S3FileSystem(
        access_key=s3.access_key, secret_key=s3.secret_key,
        region=s3.region, endpoint_override=proxy.url, scheme="http")
    fs = pagemesh.PagemeshFileSystem(
        target_protocol="s3", cache_dir=cache_dir,
        target_options={"key": s3.access_key, "secret": s3.secret_key,
                        "endpoint_url": proxy.url,
                        "client_kwargs": {"region_name": s3.region}})
    rows = []
    passes = [("origin direct (pyarrow S3)", direct)] + [
        ("pagemesh epoch %d" % e, fs) for e in range(1, epochs + 1)]
    expected = None
    for name, filesystem in passes:
        proxy.reset_stats()
        start = time.monotonic()
        table = pq.read_table(path, filesystem=filesystem,
                              columns=PROJECTION)
        seconds = time.monotonic() - start
        if expected is None:
            expected = table
        elif not table.equals(expected):
            sys.exit("%s: the table differs from the origin's" % name)
        rows.append((name, seconds, table.num_rows, table.nbytes,
                     proxy.stats()))
    fs.peer.close()
    return rows


def parquet_report(rows, dataset_bytes):
    print("\n| pass | seconds | rows/s | MB/s (decoded) | origin requests "
          "| origin MB | origin / dataset |")
    print("|---|---|---|---|---|---|---|")
    for name, seconds, nrows, nbytes, st in rows:
        print("| %s | %.2f | %.0f | %.0f | %d | %.1f | %.0f%% |" % (
            name, seconds, nrows / seconds, nbytes / seconds / 1e6,
            st["total_requests"], st["get_bytes"] / 1e6,
            100.0 * st["get_bytes"] / dataset_bytes))
    direct, warm = rows[0], rows[-1]
    print("\nwarm epoch vs origin direct: %.1fx faster, %s origin bytes" % (
        direct[1] / warm[1], "zero" if warm[4]["get_bytes"] == 0 else
        "%d" % warm[4]["get_bytes"]))


def main():
    args = parse_args()
    pagemesh = os.path.join(args.build, "pagemesh")
    if not os.path.exists(pagemesh):
        sys.exit("no %s: build first (scripts/build.sh)" % pagemesh)
    work = tempfile.mkdtemp(prefix="pagemesh-demo-")
    print("pagemesh demo: a local S3 server (moto, SigV4), origin shaped to "
          "%.0f ms to first byte and %.0f MB/s per connection"
          % (args.ttfb_ms, args.bandwidth_mbs))
    try:
        with S3Server() as s3:
            s3.create_bucket(BUCKET)
            with OriginProxy(s3.endpoint, ttfb_ms=args.ttfb_ms,
                             bandwidth=args.bandwidth_mbs * 1e6) as proxy:
                if not args.skip_cli:
                    cli_pipeline(args, s3, proxy, work)
                if not args.skip_python:
                    python_pipeline(args, s3, proxy, work)
    finally:
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
