#!/usr/bin/env python3
"""The epoch benchmark: how fast a training job's data loads, epoch after
epoch, through pagemesh and through what users would run instead, side by
side in one invocation, on the same generated data and the same origin.

The origin is a local S3-compatible server (moto, SigV4 on) behind
perf/origin_proxy.py, which makes it behave like remote object storage
(30 ms to first byte, 100 MB/s per connection by default) and counts the
requests and bytes that reach it. Workloads (perf/bench_data.py): Parquet
row groups read by PyArrow with a column projection, ~110 KiB image-like
objects read whole, large shards read sequentially; every epoch reads the
whole workload in a new random order, split over the readers, and every
read is checked against the source.

Contenders (perf/bench_contenders.py): the origin read directly (s3fs,
PyArrow's S3 client); fsspec filecache and blockcache over s3fs; JuiceFS
Community Edition (FUSE, SQLite metadata, data on the same S3 through the
same proxy); pagemesh on N peers over tcp and over fabric; and the
ceilings: local pread of the same bytes, raw loopback TCP. Each caching
contender gets one cache per node of the same capacity, which holds the
dataset cluster-wide (with R=2 for pagemesh) but not on one node.

usage: perf/epoch_bench.py [--quick] [--epochs N] [--nodes N] [--readers N]
       [--workloads parquet,images,shards] [--contenders NAME,...]
       [--ttfb-ms MS] [--bandwidth-mbs MBS] [--scale X] [--out DIR]

Writes perf/results/epoch_bench[-quick].{md,json} and throughput/latency
PNGs, and prints the table and the goals. Exits 1 if any read failed or
returned wrong bytes; timings never fail it.
"""

import argparse
import math
import os
import shutil
import sys
import tempfile
import time

PERF = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(PERF)
sys.path[:0] = [os.path.join(ROOT, "tests"), PERF]

import bench_data  # noqa: E402
import bench_report  # noqa: E402
from bench_contenders import all_contenders, leftover_mounts  # noqa: E402
from bench_runner import Context, Runner  # noqa: E402
from harness.s3server import S3Server  # noqa: E402
from origin_proxy import OriginProxy  # noqa: E402

BUCKET = "pm-bench"
COLUMNS = """\
Columns: *MB/s* = bytes handed to the readers / epoch wall time, all
readers together (Parquet: the projected column chunks); *obj/s* = reads/s
(objects, 4 MiB shard chunks, Parquet row groups); *origin req / MB* = what
reached the origin in that epoch; *p50/p99* = per read; *CPU s/GB* =
readers plus the contender's peers or mounts; *peer RSS* = peak (VmHWM) of
the largest peer or mount process; *× direct* = against the origin read
directly, *× pread* / *× loopback* = against the ceilings. Probe rows:
*local hits* = one peer holding everything, *remote hits* = readers on a
peer that owns nothing (one more epoch after the others)."""
WORKLOADS = ("parquet", "images", "shards")


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="small data, fewer epochs: a CI smoke run")
    p.add_argument("--epochs", type=int,
                   help="epochs per contender (default 3, --quick 2)")
    p.add_argument("--nodes", type=int, default=4,
                   help="peers / cache nodes (default 4)")
    p.add_argument("--readers", type=int,
                   help="concurrent reader processes, spread over the "
                        "nodes (default: one per node)")
    p.add_argument("--capacity-fraction", type=float, default=0.6,
                   help="per-node cache capacity as a fraction of a "
                        "workload's size (default 0.6)")
    p.add_argument("--workloads", default=",".join(WORKLOADS))
    p.add_argument("--contenders", default="",
                   help="comma-separated names (substrings) to run; "
                        "default all")
    p.add_argument("--ttfb-ms", type=float, default=30.0)
    p.add_argument("--bandwidth-mbs", type=float, default=100.0,
                   help="origin bandwidth per connection, MB/s")
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiply object counts")
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--build", default=os.environ.get(
        "PAGEMESH_BUILD_DIR", os.path.join(ROOT, "build")))
    p.add_argument("--out", default=os.path.join(PERF, "results"))
    p.add_argument("--work", help="scratch directory (default: a new "
                                  "temporary one, removed at the end)")
    p.add_argument("--python", default=sys.executable)
    args = p.parse_args(argv)
    args.epochs = args.epochs or (2 if args.quick else 3)
    args.readers = args.readers or args.nodes
    if args.epochs < 2:
        p.error("--epochs must be at least 2 (a cold and a warm epoch)")
    args.workloads = [w for w in args.workloads.split(",") if w]
    for w in args.workloads:
        if w not in WORKLOADS:
            p.error("unknown workload %r" % w)
    return args


def chosen(contenders, names):
    if not names:
        return contenders
    wanted = [n.strip().lower() for n in names.split(",") if n.strip()]
    return [c for c in contenders if any(w in c.name.lower()
                                         for w in wanted)]


def load_line():
    one, five, fifteen = os.getloadavg()
    return "load average %.2f, %.2f, %.2f on %d cores" % (
        one, five, fifteen, os.cpu_count())


def prepare_data(args, s3, src_root):
    t0 = time.monotonic()
    workloads = bench_data.make_all(src_root, args.quick, args.scale,
                                    args.workloads, args.seed)
    s3.create_bucket(BUCKET)
    bench_data.upload(s3.client(), BUCKET, src_root, workloads)
    for w in workloads:
        w.node_capacity = int(math.ceil(w.total_bytes *
                                        args.capacity_fraction))
        print("  %-8s %5d objects, %7.1f MiB; an epoch reads %7.1f MiB in "
              "%d reads; per-node capacity %.1f MiB" % (
                  w.name, len(w.objects), w.total_bytes / 2**20,
                  w.read_bytes / 2**20,
                  sum(len(o) for o in w.ops_of_object.values()),
                  w.node_capacity / 2**20))
    print("  generated and uploaded in %.1f s" % (time.monotonic() - t0))
    return workloads


def run_all(args, ctx, workloads):
    runner = Runner(ctx)
    contenders = chosen(all_contenders(), args.contenders)
    for w in workloads:
        print("\n== %s" % w.name, flush=True)
        for c in contenders:
            runner.run(c, w)
        if not args.contenders or "loopback" in args.contenders:
            runner.loopback(w, 1.0 if args.quick else 2.0)
    return runner


def report(args, runner, workloads, meta):
    names = [w.name for w in workloads]
    share = {w.name: w.node_capacity / w.total_bytes for w in workloads}
    suffix = "-quick" if args.quick else ""
    os.makedirs(args.out, exist_ok=True)
    table = bench_report.table(runner.rows, names)
    goal_lines = bench_report.goals(runner.rows, names, share, runner.facts)
    notes = ["- %s" % n for w in names for n in runner.notes.get(w, [])]
    text = "\n".join([
        "# pagemesh epoch benchmark%s" % (" (--quick)" if args.quick else ""),
        "", "- " + "\n- ".join(meta["lines"]), "", COLUMNS, "", table, "",
        "Notes:", *notes, "", "Goals:", "```", *goal_lines, "```", ""])
    md = os.path.join(args.out, "epoch_bench%s.md" % suffix)
    with open(md, "w") as f:
        f.write(text)
    with open(os.path.join(args.out, "epoch_bench%s.json" % suffix),
              "w") as f:
        f.write(bench_report.to_json(runner.rows, meta))
    pngs = bench_report.plots(runner.rows, names, args.out, suffix)
    print("\n" + text)
    print("written: %s" % ", ".join([md] + pngs))


def main(argv=None):
    args = parse_args(argv)
    work = args.work or tempfile.mkdtemp(prefix="pagemesh-bench-")
    os.makedirs(work, exist_ok=True)
    started = time.monotonic()
    meta = {"lines": [
        "started %s, %s" % (time.strftime("%Y-%m-%d %H:%M:%S"), load_line()),
        "origin: moto S3 behind origin_proxy, %g ms to first byte, %g MB/s "
        "per connection" % (args.ttfb_ms, args.bandwidth_mbs),
        "%d nodes, %d readers (reader r on node r %% %d), %d epochs, "
        "per-node capacity %.0f%% of each workload" % (
            args.nodes, args.readers, args.nodes, args.epochs,
            args.capacity_fraction * 100)]}
    print("pagemesh epoch benchmark: " + meta["lines"][0])
    print(meta["lines"][1] + "\n" + meta["lines"][2])
    runner = None
    try:
        with S3Server() as s3, OriginProxy(
                s3.endpoint, ttfb_ms=args.ttfb_ms,
                bandwidth=args.bandwidth_mbs * 1e6) as proxy:
            src_root = os.path.join(work, "source")
            print("\n== dataset")
            workloads = prepare_data(args, s3, src_root)
            ctx = Context(args, PERF, work, s3, proxy, BUCKET, src_root)
            if not ctx.python_binding:
                print("  note: %s" % ctx.python_binding_reason)
            runner = run_all(args, ctx, workloads)
    finally:
        for mnt in leftover_mounts(work):
            os.system("fusermount3 -u -z %s" % mnt)
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    meta["lines"].append("finished after %.0f s, %s" % (
        time.monotonic() - started, load_line()))
    report(args, runner, workloads, meta)
    if runner.failed:
        print("\nepoch_bench: FAILED: some reads failed or returned wrong "
              "bytes (see ERROR rows)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
