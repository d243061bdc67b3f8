"""The epoch benchmark's workloads: generated datasets, their per-epoch read
plans, and the expected digest of every read (so that each contender's
bytes are checked, not just timed).

Three workloads, each a set of objects under its own prefix of the bucket,
with an identical local copy (the pread ceiling reads it, JuiceFS is loaded
from it, the expected digests are computed from it):

- ``parquet``: Parquet files of fixed-width numeric columns in row groups,
  read by PyArrow with a column projection; an epoch reads every row group
  once, in a new random order. A read is one (file, row group); its
  "bytes" are those of the projected column chunks in the file.
- ``images``: many small objects of about 110 KiB (ImageNet-like JPEG
  sizes), read whole, in a new random order every epoch.
- ``shards``: a few large objects read sequentially in fixed chunks
  (checkpoints, WebDataset/tar shards); each epoch deals whole shards to
  readers in a new random order.

Reads are dealt to readers round-robin from the shuffled order; a reader
always belongs to the same node (reader r to node r % nodes), so which
node reads what changes every epoch, as in distributed training.
"""

import os
import random
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import xxhash

KIB = 1024
MIB = 1024 * 1024

# Parquet schema: an id, a label and many float features; the projection
# reads about a third of the bytes of each row group.
FEATURES = 24
PROJECTION = ["id", "label"] + ["f%02d" % i for i in range(6)]


@dataclass
class Op:
    """One read. For byte workloads (key, offset, length); for parquet
    (key, row_group) with length = projected column-chunk bytes."""
    key: str
    offset: int
    length: int
    row_group: int = -1

    def line(self) -> str:
        """The op as one line of the reader protocol (tab separated)."""
        second = self.row_group if self.row_group >= 0 else self.offset
        return "%s\t%d\t%d" % (self.key, second, self.length)


@dataclass
class Workload:
    name: str
    kind: str                      # "parquet" or "bytes"
    objects: Dict[str, int]        # key -> size in bytes
    read_unit: int                 # typical bytes of one read (ceilings)
    node_capacity: int = 0         # per-node cache bytes (set by the run)
    ops_of_object: Dict[str, List[Op]] = field(default_factory=dict)
    expected: Dict[Tuple, str] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        return sum(self.objects.values())

    @property
    def read_bytes(self) -> int:
        """Bytes one epoch reads (all ops)."""
        return sum(op.length for ops in self.ops_of_object.values()
                   for op in ops)

    def plan(self, epoch: int, readers: int, seed: int) -> List[List[Op]]:
        """Each reader's ops for one epoch, in a new random order."""
        rng = random.Random("%d/%s/%d" % (seed, self.name, epoch))
        plans: List[List[Op]] = [[] for _ in range(readers)]
        if self.name == "shards":
            keys = sorted(self.ops_of_object)
            rng.shuffle(keys)
            for i, key in enumerate(keys):
                plans[i % readers].extend(self.ops_of_object[key])
            return plans
        ops = [op for key in sorted(self.ops_of_object)
               for op in self.ops_of_object[key]]
        rng.shuffle(ops)
        for i, op in enumerate(ops):
            plans[i % readers].append(op)
        return plans

    def expected_digest(self, op: Op) -> str:
        return self.expected[(op.key, op.offset, op.row_group)]


# ---- sizes ------------------------------------------------------------------

def sizes(quick: bool, scale: float = 1.0) -> Dict[str, Dict[str, int]]:
    """Dataset sizes: ~750 MiB in all (Parquet 264 MiB of which an epoch
    reads the projected third, images 110 MiB, shards 384 MiB); --quick
    about a tenth of it."""
    if quick:
        base = {"parquet": {"files": 4, "row_groups": 4, "rows": 8192},
                "images": {"count": 256},
                "shards": {"count": 4, "mib": 12}}
    else:
        base = {"parquet": {"files": 16, "row_groups": 8, "rows": 20000},
                "images": {"count": 1024},
                "shards": {"count": 8, "mib": 48}}
    if scale != 1.0:
        base["parquet"]["files"] = max(2, round(base["parquet"]["files"]
                                                * scale))
        base["images"]["count"] = max(16, round(base["images"]["count"]
                                                * scale))
        base["shards"]["count"] = max(2, round(base["shards"]["count"]
                                               * scale))
    return base


# ---- generation -------------------------------------------------------------

def _write(root: str, key: str, data: bytes) -> None:
    path = os.path.join(root, key)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def make_images(root: str, count: int, seed: int) -> Workload:
    """`count` incompressible objects of 90-130 KiB (mean ~110 KiB)."""
    rng = random.Random(seed)
    w = Workload("images", "bytes", {}, read_unit=110 * KIB)
    for i in range(count):
        key = "images/train/img-%06d.jpg" % i
        data = rng.randbytes(rng.randint(90 * KIB, 130 * KIB))
        _write(root, key, data)
        w.objects[key] = len(data)
        w.ops_of_object[key] = [Op(key, 0, len(data))]
        w.expected[(key, 0, -1)] = xxhash.xxh3_64_hexdigest(data)
    return w


def make_shards(root: str, count: int, mib: int, seed: int,
                chunk: int = 4 * MIB) -> Workload:
    """`count` objects of `mib` MiB, read sequentially in `chunk` ranges."""
    rng = random.Random(seed + 1)
    w = Workload("shards", "bytes", {}, read_unit=chunk)  # the ceilings' size
    for i in range(count):
        key = "shards/shard-%04d.tar" % i
        data = rng.randbytes(mib * MIB)
        _write(root, key, data)
        w.objects[key] = len(data)
        ops = []
        for off in range(0, len(data), chunk):
            piece = data[off:off + chunk]
            ops.append(Op(key, off, len(piece)))
            w.expected[(key, off, -1)] = xxhash.xxh3_64_hexdigest(piece)
        w.ops_of_object[key] = ops
    return w


def table_digest(table) -> str:
    """XXH3-64 over the values of each column, in column order (numeric
    columns without nulls: their numpy bytes are the values)."""
    h = xxhash.xxh3_64()
    for column in table.columns:
        h.update(column.to_numpy().tobytes())
    return h.hexdigest()


def make_parquet(root: str, files: int, row_groups: int, rows: int,
                 seed: int) -> Workload:
    """`files` uncompressed Parquet files of `row_groups` row groups of
    `rows` rows: id (int64), label (int32), f00..f23 (float32)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    gen = np.random.default_rng(seed)
    w = Workload("parquet", "parquet", {}, read_unit=MIB)
    for i in range(files):
        key = "parquet/train/part-%04d.parquet" % i
        n = row_groups * rows
        columns = {"id": pa.array(np.arange(i * n, (i + 1) * n,
                                            dtype=np.int64)),
                   "label": pa.array(gen.integers(0, 1000, n,
                                                  dtype=np.int32))}
        for f in range(FEATURES):
            columns["f%02d" % f] = pa.array(
                gen.standard_normal(n, dtype=np.float32))
        path = os.path.join(root, key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        pq.write_table(pa.table(columns), path, row_group_size=rows,
                       compression="none", use_dictionary=False)
        w.objects[key] = os.path.getsize(path)
        _parquet_ops(w, key, path)
    return w


def _parquet_ops(w: Workload, key: str, path: str) -> None:
    import pyarrow.parquet as pq
    pf = pq.ParquetFile(path)
    names = pf.schema_arrow.names
    wanted = [names.index(c) for c in PROJECTION]
    ops = []
    for rg in range(pf.metadata.num_row_groups):
        meta = pf.metadata.row_group(rg)
        length = sum(meta.column(c).total_compressed_size for c in wanted)
        ops.append(Op(key, 0, length, row_group=rg))
        table = pf.read_row_group(rg, columns=PROJECTION)
        w.expected[(key, 0, rg)] = table_digest(table)
    w.ops_of_object[key] = ops


def make_all(root: str, quick: bool, scale: float, names: List[str],
             seed: int = 2024) -> List[Workload]:
    """Generate the chosen workloads' files under `root`."""
    s = sizes(quick, scale)
    made = []
    for name in names:
        if name == "parquet":
            made.append(make_parquet(root, seed=seed, **s["parquet"]))
        elif name == "images":
            made.append(make_images(root, s["images"]["count"], seed))
        elif name == "shards":
            made.append(make_shards(root, s["shards"]["count"],
                                    s["shards"]["mib"], seed))
        else:
            raise ValueError("unknown workload %r" % name)
    return made


def upload(client, bucket: str, root: str, workloads: List[Workload],
           threads: int = 4) -> None:
    """Put every object of the workloads into the bucket (straight to the
    S3 server, not through the shaping proxy)."""
    from concurrent.futures import ThreadPoolExecutor

    def put(key):
        with open(os.path.join(root, key), "rb") as f:
            client.put_object(Bucket=bucket, Key=key, Body=f.read())
    keys = [k for w in workloads for k in w.objects]
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(put, keys))
