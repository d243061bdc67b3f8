#!/usr/bin/env python3
"""One Python reader process of the epoch benchmark: the contenders that
users drive from Python (s3fs and PyArrow's S3 client read directly,
fsspec's ``filecache``/``blockcache`` over s3fs, the pagemesh fsspec
filesystem, local files), for the workloads of perf/bench_data.py.

It speaks the same line protocol as perf/epoch_reader.c: "READY" once its
filesystem is set up, then for each "EPOCH <n> <count>" followed by count op
lines it runs the ops and prints, only at the end, one
"<latency_ns> <bytes> <digest>" (or "E <detail>") line per op and
"END <start_ns> <end_ns>". "META <count>" and count keys: look the objects
up (open the Parquet files), untimed; "E" lines for failures, then
"END 0 0". Op lines are "<key>\\t<offset>\\t<length>" for
byte workloads and "<key>\\t<row_group>\\t<bytes>" for Parquet, where a read
is ``ParquetFile.read_row_group(row_group, columns=PROJECTION)`` and the
digest is that of the decoded values (bench_data.table_digest).

usage: bench_reader.py --backend s3|s3-arrow|filecache|blockcache|pagemesh|
                       local --kind bytes|parquet --prefix PREFIX
                       [--cache-dir DIR]
S3 endpoint and credentials come from the AWS_* environment.
"""

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import xxhash  # noqa: E402

from bench_data import PROJECTION, table_digest  # noqa: E402


def s3_options():
    """s3fs options from the AWS_* environment."""
    return {"key": os.environ["AWS_ACCESS_KEY_ID"],
            "secret": os.environ["AWS_SECRET_ACCESS_KEY"],
            "endpoint_url": os.environ["AWS_ENDPOINT_URL"],
            "client_kwargs": {"region_name":
                              os.environ.get("AWS_REGION", "us-east-1")}}


def make_filesystem(backend, cache_dir):
    """The filesystem a user would read with, for one backend; None means
    plain local files."""
    import fsspec
    if backend == "local":
        return None
    if backend == "s3":
        return fsspec.filesystem("s3", **s3_options())
    if backend == "s3-arrow":
        import pyarrow.fs
        return pyarrow.fs.S3FileSystem(
            access_key=os.environ["AWS_ACCESS_KEY_ID"],
            secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
            endpoint_override=os.environ["AWS_ENDPOINT_URL"],
            region=os.environ.get("AWS_REGION", "us-east-1"),
            scheme="http")
    if backend in ("filecache", "blockcache"):
        return fsspec.filesystem(backend, target_protocol="s3",
                                 target_options=s3_options(),
                                 cache_storage=cache_dir, check_files=False,
                                 expiry_time=False)
    if backend == "pagemesh":
        from pagemesh.fs import PagemeshFileSystem
        return PagemeshFileSystem(target_protocol="s3",
                                  target_options=s3_options())
    raise ValueError("unknown backend %r" % backend)


class ByteReader:
    """Reads (key, offset, length) ranges: whole objects with one
    cat_file, partial ranges through a file kept open while the same
    object is read sequentially."""

    def __init__(self, fs, prefix):
        self.fs = fs
        self.prefix = prefix
        self.open_key = None
        self.file = None

    def _file(self, key):
        if key != self.open_key:
            self.close()
            path = self.prefix + key
            self.file = open(path, "rb") if self.fs is None else \
                self.fs.open(path, "rb")
            self.open_key = key
        return self.file

    def read(self, key, offset, length):
        if offset == 0 and self.fs is not None and key != self.open_key:
            data = self.fs.cat_file(self.prefix + key, start=0, end=length)
            if len(data) == length:
                return len(data), xxhash.xxh3_64_hexdigest(data)
        f = self._file(key)
        f.seek(offset)
        data = f.read(length)
        return len(data), xxhash.xxh3_64_hexdigest(data)

    def prime(self, key):
        """Look the object up (metadata only)."""
        if self.fs is None:
            os.stat(self.prefix + key)
        else:
            self.fs.info(self.prefix + key)

    def close(self):
        if self.file is not None:
            self.file.close()
        self.file = self.open_key = None


class ParquetReader:
    """Reads (file, row group) with the column projection; keeps each
    ParquetFile open across reads and epochs, as a data loader would."""

    def __init__(self, fs, prefix):
        self.fs = fs
        self.prefix = prefix
        self.files = {}
        # Before READY: what the first digest would otherwise load inside
        # a timed read (to_numpy imports numpy: 0.2-0.3 s in a fresh
        # process on the 2-core VM, which made every fresh probe reader's
        # first read look like a 300 ms remote hit).
        import pyarrow as pa
        table_digest(pa.table({"warm": pa.array([0.0], pa.float32())}))

    def _parquet_file(self, key):
        import pyarrow.parquet as pq
        pf = self.files.get(key)
        if pf is None:
            path = self.prefix + key
            pf = pq.ParquetFile(path) if self.fs is None else \
                pq.ParquetFile(path, filesystem=self.fs)
            self.files[key] = pf
        return pf

    def read(self, key, row_group, length):
        table = self._parquet_file(key).read_row_group(row_group,
                                                      columns=PROJECTION)
        return length, table_digest(table)

    def prime(self, key):
        """Open the file (its footer), as a loader does once."""
        self._parquet_file(key)

    def close(self):
        self.files.clear()


def run_epoch(reader, count, stdin, stdout):
    ops = []
    for _ in range(count):
        key, second, length = stdin.readline().rstrip("\n").split("\t")
        ops.append((key, int(second), int(length)))
    results = []
    start = time.monotonic_ns()
    for key, second, length in ops:
        t0 = time.monotonic_ns()
        try:
            got, digest = reader.read(key, second, length)
            results.append("%d %d %s" % (time.monotonic_ns() - t0, got,
                                         digest))
        except Exception as e:  # reported per op, checked by the harness
            reader.close()
            detail = ("%s: %s: %s" % (key, type(e).__name__, e))
            results.append("E " + detail.replace("\n", " ")[:500])
    end = time.monotonic_ns()
    stdout.write("\n".join(results + ["END %d %d" % (start, end)]) + "\n")
    stdout.flush()


def run_meta(reader, count, stdin, stdout):
    errors = []
    for _ in range(count):
        key = stdin.readline().rstrip("\n")
        try:
            reader.prime(key)
        except Exception as e:
            errors.append("E %s: %s: %s" % (key, type(e).__name__, e))
    stdout.write("\n".join(errors + ["END 0 0"]) + "\n")
    stdout.flush()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", required=True)
    p.add_argument("--kind", choices=["bytes", "parquet"], required=True)
    p.add_argument("--prefix", default="")
    p.add_argument("--cache-dir")
    args = p.parse_args(argv)
    fs = make_filesystem(args.backend, args.cache_dir)
    cls = ParquetReader if args.kind == "parquet" else ByteReader
    reader = cls(fs, args.prefix)
    print("READY", flush=True)
    for line in sys.stdin:
        if line.startswith("QUIT"):
            break
        words = line.split()
        if words[0] == "META":
            run_meta(reader, int(words[1]), sys.stdin, sys.stdout)
        else:
            run_epoch(reader, int(words[2]), sys.stdin, sys.stdout)
    reader.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
