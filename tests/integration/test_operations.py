"""Operating the mesh with real daemons: preload a prefix with progress,
evict and invalidate, change a peer's capacity while it runs, and drain a
peer so that the next epoch costs zero origin reads."""

import json
import random
import time

import pytest

from harness.mesh import Mesh

BUCKET = "pm-ops"
KiB = 1024
PAGE = 256 * KiB
OBJECTS = {"set/obj-%03d.bin" % i: random.Random(i).randbytes(
    random.Random(1000 + i).randint(30, 600) * KiB) for i in range(120)}
PAGES = sum((len(v) + PAGE - 1) // PAGE for v in OBJECTS.values())


@pytest.fixture
def mesh(build_dir, tmp_path, s3, proxy):
    env = s3.env(endpoint=proxy.url)
    with Mesh(build_dir, tmp_path, count=4, env=env,
              extra_args=["--page-size", str(PAGE), "--replicas", "2",
                          "--disk-capacity", "256M"]) as m:
        m.wait_members(4)
        yield m


def gets(proxy):
    return proxy.stats()["requests"].get("GET", 0)


def read_all(mesh, peers):
    """Read every object through the given peers (round robin) and check
    the bytes."""
    for n, key in enumerate(sorted(OBJECTS)):
        data = mesh.cli(peers[n % len(peers)]).cat("s3://%s/%s" % (BUCKET,
                                                                  key))
        assert data == OBJECTS[key]


def test_load_then_read_everywhere_from_the_mesh(mesh, proxy):
    r = mesh.cli(0).run("load", "s3://%s/set/" % BUCKET, "--json",
                        "--parallel", "4", check=True)
    summary = json.loads(r.stdout)
    assert summary["objects"] == len(OBJECTS) and summary["failed"] == 0
    assert summary["bytes"] == sum(len(v) for v in OBJECTS.values())
    assert b"loaded %d objects" % len(OBJECTS) in r.stderr
    assert gets(proxy) == PAGES + 1, "every page once, and one listing"
    # loaded pages sit on their two owners (the second copy is made in
    # the background)
    mesh.wait(lambda: sum(mesh.status(i)["stats"]["pages_disk"]
                          for i in range(4)) == 2 * PAGES,
              timeout=40, what="two copies of every loaded page")
    proxy.reset_stats()
    read_all(mesh, [1, 2, 3])
    assert gets(proxy) == 0


def test_evict_and_invalidate(mesh, proxy):
    cli = mesh.cli(0)
    cli.run("load", "s3://%s/set/" % BUCKET, check=True)
    before = mesh.status(0)["stats"]["pages_disk"]
    assert before > 0
    out = cli.run("evict", "s3://%s/set/" % BUCKET, check=True).stdout
    assert out.startswith(b"evicted ")
    assert int(out.split()[1]) >= before   # pages of both tiers
    st = mesh.status(0)["stats"]
    assert st["pages_disk"] == 0 and st["pages_ram"] == 0
    proxy.reset_stats()
    cli.run("invalidate", "s3://%s/set/" % BUCKET, check=True)
    key = sorted(OBJECTS)[0]
    assert cli.cat("s3://%s/%s" % (BUCKET, key)) == OBJECTS[key]
    # The metadata was asked again: by this peer or the metadata's owner.
    assert proxy.stats()["requests"].get("HEAD", 0) <= 1


def test_invalidate_reaches_the_metadata_owners(mesh, s3):
    """Objects read through peer 0, then replaced at the origin. After
    `invalidate` on peer 0 its reads return the new bytes, although the
    metadata of most of them is owned by other peers, which still hold the
    old entries within their TTL: peer 0 asks them to read the origin
    again."""
    keys = ["changed/obj-%02d.bin" % i for i in range(16)]
    old = {k: random.Random(500 + i).randbytes(100 * KiB)
           for i, k in enumerate(keys)}
    new = {k: random.Random(900 + i).randbytes(140 * KiB)
           for i, k in enumerate(keys)}
    s3.put_objects(BUCKET, old)
    cli = mesh.cli(0)
    for key in keys:
        assert cli.cat("s3://%s/%s" % (BUCKET, key)) == old[key]
    s3.put_objects(BUCKET, new)
    cli.run("invalidate", "s3://%s/changed/" % BUCKET, check=True)
    stale = [key for key in keys
             if cli.cat("s3://%s/%s" % (BUCKET, key)) != new[key]]
    assert stale == []


def test_capacity_changes_spread_through_the_mesh(mesh):
    mesh.cli(2).run("capacity", "--disk", "32M", "--ram", "8M", check=True)
    st = mesh.status(2)["stats"]
    assert st["disk_capacity"] == 32 << 20 and st["ram_capacity"] == 8 << 20
    addr = mesh.addr(2)

    def seen():
        return all({m["addr"]: m["capacity"] for m in mesh.members(i)}
                   .get(addr) == 32 << 20 for i in range(4))
    mesh.wait(seen, timeout=20, what="the new weight gossiped to everyone")


def test_drain_shrinks_the_cluster_without_a_cold_epoch(mesh, proxy):
    read_all(mesh, [0, 1, 2, 3])
    assert gets(proxy) == PAGES
    mesh.wait(lambda: sum(mesh.status(i)["stats"]["pages_disk"]
                          for i in range(4)) == 2 * PAGES,
              timeout=40, what="two copies of every page")
    proxy.reset_stats()
    held = mesh.status(1)["stats"]["pages_disk"]
    r = mesh.cli(1).run("drain", check=True)
    assert b"drained" in r.stdout
    # Four peers, R = 2: each page on its disk has one new owner once it
    # is gone, and each is counted once.
    assert int(r.stdout.split()[1]) == held, (r.stdout, held)
    mesh.procs[1].wait(timeout=30)  # pagemeshd exits once drained
    mesh.procs[1] = None
    mesh.wait_members(3, peers=[0, 2, 3], timeout=20)
    read_all(mesh, [0, 2, 3])
    assert gets(proxy) == 0, proxy.stats()["requests"]


def test_a_peer_that_joins_takes_its_share(build_dir, tmp_path, s3, proxy):
    env = s3.env(endpoint=proxy.url)
    args = ["--page-size", str(PAGE), "--replicas", "2",
            "--disk-capacity", "256M"]
    mesh = Mesh(build_dir, tmp_path, count=4, env=env, extra_args=args)
    try:
        for i in range(3):  # the fourth joins later, as an autoscaler would
            mesh.start(i)
        mesh.wait_members(3, peers=[0, 1, 2])
        read_all(mesh, [0, 1, 2])
        assert gets(proxy) == PAGES
        mesh.start(3)
        mesh.wait_members(4)
        # The old owners copy it the pages it now owns, without any read.
        mesh.wait(lambda: mesh.status(3)["stats"]["pages_disk"] > PAGES // 8,
                  timeout=30, what="the new peer warmed by the old owners")
        proxy.reset_stats()
        read_all(mesh, [3, 0, 1, 2])
        assert gets(proxy) == 0, proxy.stats()["requests"]
        print("joined peer holds %d of %d pages" % (
            mesh.status(3)["stats"]["pages_disk"], PAGES))
    finally:
        mesh.stop_all()
