"""The mesh with real processes: four pagemeshd peers (R=2) over a real
S3-compatible server behind a request-counting proxy, a dataset of
several hundred objects, reads issued through different peers.

- epoch 1: every page comes from the origin exactly once cluster-wide;
- epoch 2, through other peers: zero origin requests;
- a peer SIGKILLed in the middle of an epoch: no failed read, every byte
  identical, no origin read for a page that had a surviving replica;
- a peer without the cluster key gets no page from the others;
- several readers on one node: each page owned elsewhere crosses once.
"""

import os
import random
import subprocess
import time

import pytest
import xxhash

from harness.mesh import Mesh, write_key

BUCKET = "pm-mesh"
KiB = 1024
PAGE = 256 * KiB
PEERS = 4
OBJECTS = {}
rng = random.Random(11)
for i in range(300):                      # small objects: one page each
    OBJECTS["train/img-%04d.bin" % i] = rng.randbytes(rng.randint(20, 110)
                                                      * KiB)
for i in range(4):                        # a few multi-page shards
    OBJECTS["shards/shard-%d.bin" % i] = rng.randbytes(5 * PAGE + 1234 * i)
KEYS = sorted(OBJECTS)
PAGES = sum((len(v) + PAGE - 1) // PAGE for v in OBJECTS.values())


def uri(key):
    return "s3://%s/%s" % (BUCKET, key)


def split(keys, shift):
    """Keys per peer: key k goes to peer (k + shift) % PEERS."""
    out = [[] for _ in range(PEERS)]
    for k, key in enumerate(keys):
        out[(k + shift) % PEERS].append(key)
    return out


def read_through(mesh, peer, keys, loops=1, chunk=64 * KiB):
    cli = mesh.cli(peer)
    return cli.popen([cli.tool("pm_reader"), cli.cache_dir, str(loops),
                      str(chunk)] + [uri(k) for k in keys],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def first_line(proc):
    """One line of proc's output read from its descriptor a byte at a time:
    the file object's readline would buffer what follows it, and
    communicate() reads the descriptor, not that buffer (lines lost)."""
    line = b""
    while not line.endswith(b"\n"):
        byte = os.read(proc.stdout.fileno(), 1)
        if not byte:
            break
        line += byte
    return line


def check(proc, keys, loops=1, first=b""):
    out, err = proc.communicate(timeout=300)
    lines = (first + out).decode().splitlines()
    assert not [l for l in lines if l.startswith("ERROR")], lines[:5]
    assert proc.returncode == 0, err.decode()[-2000:]
    want = {"%d %s %d %s" % (loop, uri(k), len(OBJECTS[k]),
                             xxhash.xxh3_64_hexdigest(OBJECTS[k]))
            for k in keys for loop in range(loops)}
    assert set(lines) == want


def epoch(mesh, shift, peers=None):
    peers = peers if peers is not None else list(range(PEERS))
    parts = split(KEYS, shift)
    procs = [(read_through(mesh, p, parts[p]), parts[p]) for p in peers]
    for proc, keys in procs:
        check(proc, keys)


def gets(proxy):
    return proxy.stats()["requests"].get("GET", 0)


def heads(proxy):
    return proxy.stats()["requests"].get("HEAD", 0)


def start_mesh(build_dir, tmp_path, s3, proxy, transport="tcp"):
    env = s3.env(endpoint=proxy.url, PAGEMESH_PAGE_SIZE=str(PAGE))
    # --meta-ttl: the epochs' "no HEAD" counts hold however slow the run
    args = ["--replicas", "2", "--page-size", str(PAGE),
            "--disk-capacity", "64M", "--meta-ttl", "600000"]
    if transport == "fabric":
        env["FI_PROVIDER"] = "tcp"  # tcp;ofi_rxm here, verbs on RDMA NICs
        args += ["--transport", "fabric"]
    m = Mesh(build_dir, tmp_path, count=PEERS, env=env, extra_args=args)
    m.start_all()
    m.wait_members(PEERS)
    return m


@pytest.fixture(params=["tcp", "fabric"])
def any_mesh(request, build_dir, tmp_path, s3, proxy):
    m = start_mesh(build_dir, tmp_path, s3, proxy, request.param)
    yield m
    m.stop_all()
    if request.param == "fabric":
        logs = "".join(open(log).read() for log in m.logs)
        assert "fabric on" in logs, "the peers did not use libfabric"


@pytest.fixture
def mesh(build_dir, tmp_path, s3, proxy):
    m = start_mesh(build_dir, tmp_path, s3, proxy)
    yield m
    m.stop_all()


def test_epochs_through_different_peers(any_mesh, proxy):
    mesh = any_mesh
    epoch(mesh, shift=0)
    assert gets(proxy) == PAGES, "each page from the origin exactly once"
    print("epoch 1: %d GETs for %d pages, %d HEADs for %d objects" % (
        gets(proxy), PAGES, heads(proxy), len(OBJECTS)))
    assert heads(proxy) == len(OBJECTS)
    # Every page is on two peers: the owners' disks hold 2 x PAGES (the
    # copies to the second owner are made in the background).
    mesh.wait(lambda: sum(mesh.status(i)["stats"]["pages_disk"]
                          for i in range(PEERS)) == 2 * PAGES,
              timeout=40, what="two copies of every page")
    proxy.reset_stats()
    epoch(mesh, shift=1)
    epoch(mesh, shift=2)
    assert gets(proxy) == 0 and heads(proxy) == 0, proxy.stats()["requests"]
    served = sum(mesh.status(i)["stats"]["pages_to_peers"]
                 for i in range(PEERS))
    assert served > 0


def test_sigkill_of_a_peer_mid_epoch(any_mesh, proxy):
    mesh = any_mesh
    epoch(mesh, shift=0)           # fill: one copy on each of two owners
    mesh.wait(lambda: sum(mesh.status(i)["stats"]["pages_disk"]
                          for i in range(PEERS)) == 2 * PAGES,
              timeout=40, what="two copies of every page")
    proxy.reset_stats()
    victim = 2
    survivors = [p for p in range(PEERS) if p != victim]
    # Read through peers that have not read these keys yet, so that pages
    # come from their owners, the victim among them.
    parts = split(KEYS, 3)
    # The victim's share is read through the others.
    for k, key in enumerate(parts[victim]):
        parts[survivors[k % len(survivors)]].append(key)
    procs = [(read_through(mesh, p, parts[p], loops=3, chunk=32 * KiB),
              parts[p]) for p in survivors]
    # Kill as soon as the first object has been read: mid-epoch.
    first = first_line(procs[0][0])
    assert procs[0][0].poll() is None, "too late a kill"
    mesh.kill(victim)
    for n, (proc, keys) in enumerate(procs):
        check(proc, keys, loops=3, first=first if n == 0 else b"")
    assert gets(proxy) == 0, "pages with a surviving replica came from " \
        "the origin: %d GETs" % gets(proxy)
    failures = sum(mesh.status(i)["stats"]["peer_failures"]
                   for i in survivors)
    from_peers = sum(mesh.status(i)["stats"]["pages_from_peers"]
                     for i in survivors)
    print("survivors: %d pages from peers, %d failed requests to the dead "
          "peer; origin %s" % (from_peers, failures,
                               proxy.stats()["requests"]))
    assert from_peers > 0


def test_a_peer_without_the_key_gets_no_page(mesh, proxy, tmp_path):
    epoch(mesh, shift=0)
    proxy.reset_stats()
    key = write_key(os.path.join(str(tmp_path), "wrong.key"))
    stranger = Mesh(mesh.build_dir, tmp_path / "stranger", count=1,
                    env=mesh.env, key=key,
                    extra_args=["--seeds", mesh.addr(0), "--page-size",
                                str(PAGE)])
    os.makedirs(stranger.root, exist_ok=True)
    stranger.start(0)
    try:
        some = KEYS[:20]
        check(read_through(stranger, 0, some), some)
        st = stranger.status(0)["stats"]
        assert st["pages_from_peers"] == 0
        # It read everything from the origin itself.
        assert gets(proxy) == sum((len(OBJECTS[k]) + PAGE - 1) // PAGE
                                  for k in some)
        for i in range(PEERS):
            assert stranger.addr(0) not in mesh.states(i)
    finally:
        stranger.stop_all()


def test_lost_replicas_are_recreated(mesh, proxy):
    epoch(mesh, shift=0)
    mesh.kill(1)
    survivors = [0, 2, 3]
    # Once the others have declared it Dead, each page it held is copied
    # from its surviving replica to its new second owner.
    mesh.wait(lambda: sum(mesh.status(i)["stats"]["pages_disk"]
                          for i in survivors) >= 2 * PAGES,
              timeout=40, what="two copies of every page again")
    proxy.reset_stats()
    mesh.kill(3)  # a second loss: every page still has a copy
    survivors = [0, 2]
    parts = split(KEYS, 0)
    procs = [(read_through(mesh, p, parts[p] + parts[p + 1]),
              parts[p] + parts[p + 1]) for p in survivors]
    for proc, keys in procs:
        check(proc, keys)
    assert gets(proxy) == 0, proxy.stats()["requests"]


def test_readers_on_one_node_fetch_each_remote_page_once(mesh, proxy):
    """Several processes on one node read the same objects at once, pages
    owned by other peers among them: each such page crosses the network
    once, also for a reader asking while the node is still keeping the
    page it has just fetched."""
    parts = split(KEYS, 0)
    fillers = {1: parts[0] + parts[1], 2: parts[2], 3: parts[3]}
    for proc, keys in [(read_through(mesh, p, k), k)
                       for p, k in fillers.items()]:
        check(proc, keys)
    mesh.wait(lambda: sum(mesh.status(i)["stats"]["pages_disk"]
                          for i in range(PEERS)) >= 2 * PAGES,
              timeout=40, what="two copies of every page")
    before = mesh.status(0)["stats"]
    assert before["pages_from_peers"] == 0
    procs = [read_through(mesh, 0, KEYS, chunk=32 * KiB) for _ in range(4)]
    for proc in procs:
        check(proc, KEYS)
    after = mesh.status(0)["stats"]
    remote = PAGES - before["pages_disk"]   # pages peer 0 does not own
    print("peer 0 owns %d of %d pages; %d fetched from peers for 4 readers"
          % (before["pages_disk"], PAGES, after["pages_from_peers"]))
    assert after["pages_from_peers"] == remote


def test_an_object_gone_from_the_origin_is_not_a_peer_failure(mesh, s3,
                                                               proxy):
    """Objects stat'ed through peer 0, then deleted at the origin: their
    owners find them gone and answer so. Every read fails with PM_ENOENT,
    and no peer counts a failure: the owners answered (peer_failures
    counts peers that did not)."""
    gone = {"gone/obj-%02d.bin" % i: rng.randbytes(PAGE // 2)
            for i in range(16)}
    s3.put_objects(BUCKET, gone)
    cli = mesh.cli(0)
    for key in gone:
        cli.run("stat", uri(key), check=True)
    for key in gone:
        s3.delete_object(BUCKET, key)
    proxy.reset_stats()
    proc = read_through(mesh, 0, sorted(gone))
    out, _ = proc.communicate(timeout=120)
    errors = [line.split()[:3] for line in out.decode().splitlines()]
    assert errors == [["ERROR", uri(k), "PM_ENOENT"] for k in sorted(gone)]
    # Pages owned elsewhere were asked of their owners, which went to the
    # origin (404) and answered: more origin GETs than objects.
    assert gets(proxy) > len(gone), proxy.stats()["requests"]
    failures = [mesh.status(i)["stats"]["peer_failures"]
                for i in range(PEERS)]
    assert failures == [0] * PEERS
    # One owner's answer is enough: the next would only ask the origin
    # again. Per object: at most one owner's GET and the reader's own.
    assert gets(proxy) <= 2 * len(gone), proxy.stats()["requests"]
    # The metadata's owners still held the objects' entries: a stat
    # through peer 0 has them look again, and finds every object gone.
    for key in gone:
        r = cli.run("stat", uri(key))
        assert r.returncode != 0 and b"PM_ENOENT" in r.stderr, (key, r)
