"""The pagemesh fsspec filesystem over the other origins: Azure Blob
Storage (Azurite), the Hugging Face Hub (the harness's stand-in at
HF_ENDPOINT) and GCS (S3-interoperable mode against the moto server), with
target_protocol "az", "hf" and "gs". Credentials come from the
environment of the process that becomes the node peer: this module sets
them before its first filesystem opens one."""

import os
import random

import fsspec
import pytest

from harness.azurite import Azurite
from harness.hfserver import HFServer

rng = random.Random(3)
BLOB = rng.randbytes(2 * 1024 * 1024 + 99)
HF_FILE = rng.randbytes(300_000)


@pytest.fixture(scope="module")
def origins(s3, tmp_path_factory):
    with Azurite() as az, HFServer(token="hf_test") as hub:
        az.create_container("train")
        az.put("train", "shards/one.bin", BLOB)
        hub.add("dataset", "org/data", "data/part-0.bin", HF_FILE)
        s3.create_bucket("pm-gcs")
        s3.put_object("pm-gcs", "gs/obj.bin", BLOB[:500_000])
        os.environ.update(az.env())
        os.environ.update({
            "HF_ENDPOINT": hub.endpoint, "HF_TOKEN": "hf_test",
            "GCS_ENDPOINT_URL": s3.endpoint,
            "GCS_HMAC_ACCESS_ID": s3.access_key,
            "GCS_HMAC_SECRET": s3.secret_key,
            "PAGEMESH_CACHE_DIR": str(tmp_path_factory.mktemp("cache")),
        })
        yield az, hub


def test_azure_through_the_filesystem(origins):
    az, _ = origins
    fs = fsspec.filesystem("pagemesh", target_protocol="az")
    assert fs.info("train/shards/one.bin")["size"] == len(BLOB)
    assert fs.cat_file("train/shards/one.bin") == BLOB
    assert fs.cat_file("train/shards/one.bin", start=10, end=20) == BLOB[10:20]
    assert [p.rsplit("/", 1)[-1] for p in fs.find("train/shards")] == \
        ["one.bin"]
    with pytest.raises(FileNotFoundError):
        fs.cat_file("train/shards/missing.bin")


def test_hugging_face_through_the_filesystem(origins):
    _, hub = origins
    fs = fsspec.filesystem("pagemesh", target_protocol="hf")
    path = "datasets/org/data/data/part-0.bin"
    assert fs.cat_file(path) == HF_FILE
    hub.reset_counts()
    assert fs.cat_file(path) == HF_FILE  # the second read is a cache hit
    assert sum(hub.storage_counts.values()) == 0


def test_gcs_through_the_filesystem(origins):
    fs = fsspec.filesystem("pagemesh", target_protocol="gs")
    assert fs.cat_file("pm-gcs/gs/obj.bin") == BLOB[:500_000]
    assert fs.info("pm-gcs/gs/obj.bin")["size"] == 500_000


def test_a_missing_url_is_not_found(tmp_path):
    """An HTTP origin cannot list: a URL that is not there is missing
    (exists False, FileNotFoundError, PyArrow's NotFound), not an error
    about listing."""
    import pyarrow.fs as pafs
    from harness.httpserver import HTTPOrigin
    with HTTPOrigin() as web:
        web.put("/there.bin", b"here")
        fs = fsspec.filesystem("pagemesh", target_protocol="http",
                               skip_instance_cache=True)
        assert fs.exists(web.url("/there.bin"))
        missing = web.url("/not-there.bin")
        assert not fs.exists(missing) and not fs.isfile(missing)
        with pytest.raises(FileNotFoundError):
            fs.info(missing)
        handler = pafs.PyFileSystem(pafs.FSSpecHandler(fs))
        assert handler.get_file_info([missing])[0].type == \
            pafs.FileType.NotFound
