"""Ray Data (a local Ray instance, 2 CPUs) reading Parquet, images and
binary files from S3 (moto, SigV4 on) through the pagemesh filesystem:
results equal reading S3 directly, a second epoch sends no request to the
origin, and the read tasks run in Ray worker processes attached to the
driver's node peer."""

import io
import os

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray
from PIL import Image

from conftest import BUCKET
from pm_helpers import cli_status, origin_requests, target_options

IMAGES = 8
BLOBS = 12


@pytest.fixture(scope="module")
def ray_local():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


def _image(i):
    rng = np.random.default_rng(i)
    pixels = rng.integers(0, 255, (24 + i, 32 + 2 * i, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG" if i % 2 else "JPEG")
    return buf.getvalue(), "png" if i % 2 else "jpg"


@pytest.fixture(scope="module")
def data(s3):
    client = s3.client()
    objects = {}
    for i in range(3):
        rng = np.random.default_rng(100 + i)
        table = pa.table({"id": np.arange(i * 5000, (i + 1) * 5000),
                          "x": rng.random(5000),
                          "y": rng.integers(0, 100, 5000)})
        buf = io.BytesIO()
        pq.write_table(table, buf, row_group_size=2000)
        objects["ray/parquet/part-%d.parquet" % i] = buf.getvalue()
    for i in range(IMAGES):
        payload, ext = _image(i)
        objects["ray/images/img-%02d.%s" % (i, ext)] = payload
    rng = np.random.default_rng(5)
    for i in range(BLOBS):
        objects["ray/blobs/blob-%02d.bin" % i] = rng.bytes(10_000 + 997 * i)
    for key, value in objects.items():
        client.put_object(Bucket=BUCKET, Key=key, Body=value)
    return objects


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("ray-cache"))


@pytest.fixture(scope="module")
def fs(s3, proxy, cache_dir, data, ray_local):
    fs = fsspec.filesystem("pagemesh", target_protocol="s3",
                           target_options=target_options(s3, proxy.url),
                           cache_dir=cache_dir)
    assert fs.peer.role == "node"  # the driver holds the node peer
    return fs


def two_epochs(proxy, make, read, name):
    """Create a dataset with make() and read it with read(dataset) twice;
    returns both results and the origin requests of the second epoch. The
    first epoch counts from the dataset's creation (Ray Data reads Parquet
    footers then)."""
    proxy.reset_stats()
    dataset = make()
    first = read(dataset)
    print("%s epoch 1: %d origin requests, %d bytes" % (
        name, origin_requests(proxy), proxy.stats()["get_bytes"]))
    proxy.reset_stats()
    second = read(dataset)
    print("%s epoch 2: %d origin requests, %d bytes" % (
        name, origin_requests(proxy), proxy.stats()["get_bytes"]))
    return first, second, origin_requests(proxy)


def test_read_parquet(fs, proxy, data):
    expected = pa.concat_tables(
        pq.read_table(io.BytesIO(v)) for k, v in sorted(data.items())
        if k.startswith("ray/parquet/")).to_pandas()
    def make():
        return ray.data.read_parquet("%s/ray/parquet" % BUCKET, filesystem=fs)

    def read(dataset):
        return dataset.to_pandas().sort_values("id").reset_index(drop=True)

    first, second, requests = two_epochs(proxy, make, read, "read_parquet")
    # Ray's pandas columns are Arrow-backed: compare values, not dtypes.
    pd.testing.assert_frame_equal(first, expected, check_dtype=False)
    pd.testing.assert_frame_equal(second, expected, check_dtype=False)
    assert requests == 0


def test_read_images(fs, proxy, data):
    expected = {"%s/%s" % (BUCKET, k): np.asarray(Image.open(io.BytesIO(v)))
                for k, v in data.items() if k.startswith("ray/images/")}
    def make():
        return ray.data.read_images("%s/ray/images" % BUCKET, filesystem=fs,
                                    include_paths=True)

    def read(dataset):
        return {row["path"]: row["image"] for row in dataset.take_all()}

    first, second, requests = two_epochs(proxy, make, read, "read_images")
    assert sorted(first) == sorted(expected)
    for path, image in expected.items():
        assert np.array_equal(first[path], image), path
        assert np.array_equal(second[path], image), path
    assert requests == 0


def test_read_binary_files(fs, proxy, data):
    expected = {"%s/%s" % (BUCKET, k): v for k, v in data.items()
                if k.startswith("ray/blobs/")}
    def make():
        return ray.data.read_binary_files("%s/ray/blobs" % BUCKET,
                                          filesystem=fs, include_paths=True)

    def read(dataset):
        return {row["path"]: row["bytes"] for row in dataset.take_all()}

    first, second, requests = two_epochs(proxy, make, read,
                                         "read_binary_files")
    assert first == expected and second == expected
    assert requests == 0


def test_read_tasks_attach_to_the_node_peer(fs, cache_dir):
    """After the reads above: one node peer (this driver), and the Ray
    worker processes that ran read tasks are attached to it."""
    status = cli_status(cache_dir)
    assert status is not None
    assert status["node_pid"] == os.getpid()
    workers = set(status["attached"]) - {os.getpid()}
    print("node peer %d, attached Ray workers %s" % (status["node_pid"],
                                                    sorted(workers)))
    assert workers, status
