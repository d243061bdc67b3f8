"""PyTorch: a map-style Dataset that opens objects of S3 (moto, SigV4 on)
through the pagemesh filesystem, read by a DataLoader with 4 worker
processes (forked, and spawned: the filesystem is pickled into them).
Every worker attaches to the one node peer of the main process; each page
is fetched from the origin once; a second epoch costs no origin request."""

import hashlib
import os

import fsspec
import numpy as np
import pytest

# scripts/deps.sh installs PyTorch unless the disk cannot take it (it says
# so then); without it this file is reported skipped, never passed.
torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from conftest import BUCKET  # noqa: E402
from pm_helpers import cli_status, origin_bytes, target_options  # noqa: E402

MiB = 1 << 20
OBJECTS = 16
SIZE = MiB + MiB // 2  # two 1 MiB pages each


class ObjectDataset(Dataset):
    """Item i: the bytes of object i as a uint8 tensor, and the pid and
    role of the process that read it."""

    def __init__(self, fs, paths):
        self.fs = fs
        self.paths = paths

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        with self.fs.open(self.paths[index], "rb") as f:
            data = np.empty(f.size, dtype=np.uint8)
            f.readinto(data)
        return index, torch.from_numpy(data), os.getpid(), self.fs.peer.role


@pytest.fixture(scope="module")
def objects(s3):
    rng = np.random.default_rng(3)
    items = {"torch/sample-%02d.bin" % i: rng.bytes(SIZE)
             for i in range(OBJECTS)}
    s3.put_objects(BUCKET, items)
    return items


def epoch(loader):
    """index -> (sha256, pid, role) for one pass over the loader."""
    out = {}
    for index, tensor, pid, role in loader:
        out[int(index)] = (hashlib.sha256(tensor.numpy().tobytes())
                           .hexdigest(), int(pid), role)
    return out


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_dataloader_workers_share_one_node_peer(s3, proxy, tmp_path,
                                               objects, start_method):
    cache_dir = str(tmp_path / "cache")
    fs = fsspec.filesystem("pagemesh", target_protocol="s3",
                           target_options=target_options(s3, proxy.url),
                           cache_dir=cache_dir)
    assert fs.peer.role == "node"  # the training process holds the node
    keys = sorted(objects)
    dataset = ObjectDataset(fs, ["%s/%s" % (BUCKET, k) for k in keys])
    loader = DataLoader(dataset, batch_size=None, shuffle=True,
                        num_workers=4, persistent_workers=True,
                        multiprocessing_context=start_method)
    proxy.reset_stats()
    first = epoch(loader)
    stats = proxy.stats()
    expected = {i: hashlib.sha256(objects[k]).hexdigest()
                for i, k in enumerate(keys)}
    assert {i: v[0] for i, v in first.items()} == expected
    worker_pids = {v[1] for v in first.values()}
    assert os.getpid() not in worker_pids and len(worker_pids) > 1
    assert {v[2] for v in first.values()} == {"attached"}
    status = cli_status(cache_dir)
    assert status["node_pid"] == os.getpid()
    assert worker_pids <= set(status["attached"]), status
    # One GET per page, one HEAD per object, however the workers raced.
    pages = OBJECTS * 2
    print("%s: epoch 1 origin GETs %d (pages %d), HEADs %d, bytes %d" % (
        start_method, stats["requests"].get("GET", 0), pages,
        stats["requests"].get("HEAD", 0), stats["get_bytes"]))
    assert stats["requests"].get("GET", 0) == pages
    assert stats["requests"].get("HEAD", 0) == OBJECTS
    assert stats["get_bytes"] == OBJECTS * SIZE
    proxy.reset_stats()
    second = epoch(loader)
    assert {i: v[0] for i, v in second.items()} == expected
    assert proxy.stats()["total_requests"] == 0 and origin_bytes(proxy) == 0
    del loader
