"""PyArrow reading a Parquet dataset in S3 (moto, SigV4 on) through the
pagemesh filesystem: results equal reading S3 directly, a one-column
projection fetches only a fraction of the files from the origin, and a
second epoch sends no request to the origin at all.

Pages are 64 KiB here so that column chunks span several pages and a
projection can skip most of them."""

import io

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from conftest import BUCKET
from pm_helpers import origin_bytes, origin_requests, target_options

PREFIX = "parquet/train"
FILES = 4
ROW_GROUPS = 4
ROWS_PER_GROUP = 40_000


def make_table(seed):
    rng = np.random.default_rng(seed)
    n = ROW_GROUPS * ROWS_PER_GROUP
    return pa.table({
        "id": pa.array(np.arange(seed * n, (seed + 1) * n, dtype=np.int64)),
        "a": rng.random(n),
        "b": rng.random(n),
        "c": rng.standard_normal(n),
        "label": pa.array(rng.integers(0, 10, n, dtype=np.int32)),
    })


@pytest.fixture(scope="module")
def dataset(s3):
    """Writes the dataset; returns {key: size}."""
    sizes = {}
    client = s3.client()
    for i in range(FILES):
        buf = io.BytesIO()
        pq.write_table(make_table(i), buf, row_group_size=ROWS_PER_GROUP,
                       compression="none")
        key = "%s/part-%02d.parquet" % (PREFIX, i)
        client.put_object(Bucket=BUCKET, Key=key, Body=buf.getvalue())
        sizes[key] = len(buf.getvalue())
    return sizes


@pytest.fixture(scope="module")
def direct(s3):
    """PyArrow's own S3 filesystem, straight to moto (not counted)."""
    return pafs.S3FileSystem(access_key=s3.access_key,
                             secret_key=s3.secret_key, region=s3.region,
                             endpoint_override=s3.endpoint, scheme="http")


@pytest.fixture
def fs(s3, proxy, tmp_path, dataset):
    fs = fsspec.filesystem("pagemesh", target_protocol="s3",
                           target_options=target_options(s3, proxy.url),
                           cache_dir=str(tmp_path / "cache"), page_size="64K")
    proxy.reset_stats()
    return fs


def test_parquet_files_have_several_row_groups(fs, dataset):
    meta = pq.ParquetFile(fs.open("%s/%s" % (BUCKET, next(iter(dataset))))
                          ).metadata
    assert meta.num_row_groups == ROW_GROUPS and meta.num_columns == 5


def test_read_table_projection_reads_only_needed_ranges(fs, proxy, direct,
                                                        dataset):
    path = "%s/%s" % (BUCKET, PREFIX)
    expected = pq.read_table(path, filesystem=direct, columns=["a"])
    table = pq.read_table(path, filesystem=fs, columns=["a"])
    assert table.equals(expected)
    epoch1 = origin_bytes(proxy)
    total = sum(dataset.values())
    print("read_table, 1 of 5 columns: epoch 1 origin bytes %d of %d (%.0f%%)"
          % (epoch1, total, 100.0 * epoch1 / total))
    # Column "a" is about a fifth of each file; pages round it up a little.
    assert 0 < epoch1 < 0.35 * total
    proxy.reset_stats()
    again = pq.read_table(path, filesystem=fs, columns=["a"])
    assert again.equals(expected)
    print("read_table epoch 2: %d origin requests" % origin_requests(proxy))
    assert origin_requests(proxy) == 0
    # The whole dataset, for equality of every column.
    assert pq.read_table(path, filesystem=fs).equals(
        pq.read_table(path, filesystem=direct))


def test_dataset_projection_and_filter(fs, proxy, direct, dataset):
    path = "%s/%s" % (BUCKET, PREFIX)
    columns = ["id", "b"]
    where = pc.field("label") == 3

    def scan(filesystem):
        dset = ds.dataset(path, filesystem=filesystem, format="parquet")
        return dset.to_table(columns=columns, filter=where).sort_by("id")

    expected = scan(direct)
    assert expected.num_rows > 0
    assert scan(fs).equals(expected)
    epoch1 = origin_bytes(proxy)
    total = sum(dataset.values())
    print("dataset, 2+1 of 5 columns with a filter: epoch 1 origin bytes %d "
          "of %d (%.0f%%)" % (epoch1, total, 100.0 * epoch1 / total))
    assert epoch1 < 0.8 * total
    proxy.reset_stats()
    assert scan(fs).equals(expected)
    print("dataset epoch 2: %d origin requests" % origin_requests(proxy))
    assert origin_requests(proxy) == 0
