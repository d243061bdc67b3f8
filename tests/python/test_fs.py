"""The fsspec filesystem "pagemesh" and pagemesh.Peer against a real S3
server (moto, SigV4 on) behind a counting proxy: metadata, listings,
reads, errors, chained URLs, writes through the target, pickling and
forked processes."""

import concurrent.futures
import hashlib
import multiprocessing
import os
import pickle
import random

import fsspec
import pytest

import pagemesh
from conftest import BUCKET
from pm_helpers import origin_requests, target_options

MiB = 1 << 20
rng = random.Random(7)
BIG = rng.randbytes(3 * MiB + 4321)
FILES = {
    "basics/big.bin": BIG,
    "basics/small.txt": b"hello pagemesh\n",
    "basics/sub/a.json": b'{"a": 1}',
    "basics/sub/b.json": b'{"b": 2}',
    "basics/sub/deeper/c.bin": rng.randbytes(70_000),
}


@pytest.fixture(scope="module")
def data(s3):
    s3.put_objects(BUCKET, FILES)
    return FILES


@pytest.fixture
def fs(s3, proxy, tmp_path, data):
    fs = fsspec.filesystem("pagemesh", target_protocol="s3",
                           target_options=target_options(s3, proxy.url),
                           cache_dir=str(tmp_path / "cache"))
    proxy.reset_stats()
    return fs


def path(key):
    return "%s/%s" % (BUCKET, key)


def test_info_size_exists_isdir_isfile(fs):
    info = fs.info(path("basics/big.bin"))
    assert info["type"] == "file" and info["size"] == len(BIG)
    assert info["name"] == path("basics/big.bin")
    assert info["version"] == hashlib.md5(BIG).hexdigest()
    assert fs.size(path("basics/small.txt")) == len(FILES["basics/small.txt"])
    assert fs.info(path("basics/sub"))["type"] == "directory"
    assert fs.isdir(path("basics/sub")) and not fs.isfile(path("basics/sub"))
    assert fs.isfile(path("basics/big.bin"))
    assert fs.exists(path("basics/sub/a.json"))
    assert not fs.exists(path("basics/nothing-here"))
    # Through the protocol-prefixed spellings too.
    assert fs.size("pagemesh://" + path("basics/big.bin")) == len(BIG)
    assert fs.size("s3://" + path("basics/big.bin")) == len(BIG)
    assert fs.size("s3a://" + path("basics/big.bin")) == len(BIG)
    assert fs.cat_file("/" + path("basics/small.txt")) == \
        FILES["basics/small.txt"]  # a leading "/", as s3fs takes it
    # A URL of another origin is not read as a path of this one.
    for other in ("gs://", "az://", "hf://", "pagemesh://gs://"):
        with pytest.raises(ValueError, match="target_protocol"):
            fs.cat_file(other + path("basics/small.txt"))
    with pytest.raises(ValueError, match="target_protocol='s3'"):
        fsspec.filesystem("pagemesh", skip_instance_cache=True).cat_file(
            "s3://" + path("basics/small.txt"))


def test_a_directory_is_known_from_one_listing_request(s3, proxy, tmp_path,
                                                       data, monkeypatch):
    # The origin answers one key per listing page: listing basics/sub takes
    # three pages; telling that it is a directory takes one.
    monkeypatch.setenv("PAGEMESH_S3_MAX_KEYS", "1")
    fs = fsspec.filesystem("pagemesh", target_protocol="s3",
                           target_options=target_options(s3, proxy.url),
                           cache_dir=str(tmp_path / "cache"),
                           skip_instance_cache=True)
    proxy.reset_stats()
    assert fs.isdir(path("basics/sub"))
    lists = [r for r in proxy.stats()["recent"] if "list-type" in r["path"]]
    assert len(lists) == 1, lists
    assert sorted(fs.ls(path("basics/sub"), detail=False)) == [
        path("basics/sub/a.json"), path("basics/sub/b.json"),
        path("basics/sub/deeper")]
    assert not fs.exists(path("basics/su"))


def test_an_empty_local_directory_is_a_directory(tmp_path):
    (tmp_path / "data" / "empty").mkdir(parents=True)
    fs = fsspec.filesystem("pagemesh", target_protocol="file",
                           cache_dir=str(tmp_path / "cache"),
                           skip_instance_cache=True)
    root = str(tmp_path / "data")
    assert fs.isdir(root + "/empty")
    assert fs.ls(root + "/empty") == []
    assert not fs.exists(root + "/missing")


def test_ls_find_glob(fs):
    names = fs.ls(path("basics"), detail=False)
    assert names == [path("basics/big.bin"), path("basics/small.txt"),
                     path("basics/sub")]
    detail = {i["name"]: i for i in fs.ls(path("basics/"))}
    assert detail[path("basics/sub")]["type"] == "directory"
    assert detail[path("basics/big.bin")]["size"] == len(BIG)
    expected = sorted(path(k) for k in FILES)
    assert fs.find(path("basics")) == expected
    assert fs.find(path("basics"), maxdepth=1) == [
        path("basics/big.bin"), path("basics/small.txt")]
    with_dirs = fs.find(path("basics"), withdirs=True)
    assert path("basics/sub/deeper") in with_dirs
    assert fs.glob(path("basics/sub/*.json")) == [
        path("basics/sub/a.json"), path("basics/sub/b.json")]
    assert fs.glob(path("basics/**/*.bin")) == [
        path("basics/big.bin"), path("basics/sub/deeper/c.bin")]
    assert fs.find(path("basics/small.txt")) == [path("basics/small.txt")]
    # The root lists the buckets, as s3fs's does (it was PM_EBADURI).
    for root in ("", "/", "s3://"):
        buckets = fs.ls(root, detail=False)
        assert BUCKET in buckets, (root, buckets)
    entry = [i for i in fs.ls("") if i["name"] == BUCKET]
    assert entry and entry[0]["type"] == "directory", entry


def test_cat_file_and_ranges(fs, proxy):
    p = path("basics/big.bin")
    assert fs.cat_file(p) == BIG
    assert fs.cat_file(p, start=MiB - 10, end=MiB + 10) == \
        BIG[MiB - 10:MiB + 10]
    assert fs.cat_file(p, start=-100) == BIG[-100:]
    assert fs.cat_file(p, start=10, end=-10) == BIG[10:-10]
    assert fs.cat_file(p, start=len(BIG) + 5) == b""
    assert fs.cat(path("basics/small.txt")) == FILES["basics/small.txt"]
    many = fs.cat([path("basics/sub/a.json"), path("basics/sub/b.json")])
    assert many == {path("basics/sub/a.json"): b'{"a": 1}',
                    path("basics/sub/b.json"): b'{"b": 2}'}
    starts = [0, MiB - 3, 2 * MiB + 17, 5, 0]
    ends = [100, MiB + 3, 3 * MiB, None, 10]
    paths = [p, p, p, path("basics/small.txt"), path("basics/missing")]
    out = fs.cat_ranges(paths, starts, ends)
    assert out[0] == BIG[:100]
    assert out[1] == BIG[MiB - 3:MiB + 3]
    assert out[2] == BIG[2 * MiB + 17:3 * MiB]
    assert out[3] == FILES["basics/small.txt"][5:]
    assert isinstance(out[4], FileNotFoundError)
    with pytest.raises(FileNotFoundError):
        fs.cat_ranges(paths, starts, ends, on_error="raise")
    # Everything read so far is cached: no request reaches the origin now.
    proxy.reset_stats()
    assert fs.cat_ranges(paths[:4], starts[:4], ends[:4]) == out[:4]
    assert fs.cat_file(p) == BIG
    assert origin_requests(proxy) == 0


def test_a_range_past_the_end_is_clamped_to_the_object(fs):
    # A huge end allocated end - start bytes before reading (MemoryError).
    p = path("basics/small.txt")
    assert fs.cat_file(p, start=3, end=1 << 62) == FILES[p.split("/", 1)[1]][3:]
    assert fs.cat_ranges([p, p], [0, 5], [1 << 62, 1 << 61]) == [
        FILES["basics/small.txt"], FILES["basics/small.txt"][5:]]


def test_a_listed_object_stays_an_object(fs):
    # ls of an object lists the object; the listing must not make it look
    # like an empty directory afterwards.
    p = path("basics/small.txt")
    assert fs.ls(p, detail=False) == [p]
    assert fs.isfile(p) and not fs.isdir(p)
    assert fs.info(p)["size"] == len(FILES["basics/small.txt"])
    with fs.open(p, "rb") as f:
        assert f.read() == FILES["basics/small.txt"]
    assert fs.isdir(path("basics/sub"))


def test_a_closed_file_refuses_readinto(fs):
    f = fs.open(path("basics/small.txt"), "rb")
    f.close()
    with pytest.raises(ValueError):
        f.readinto(bytearray(4))


def test_chain_links_and_ipv6_hosts():
    strip = pagemesh.PagemeshFileSystem._strip_protocol
    assert strip("simplecache::pagemesh::s3://b/k") == "b/k"
    assert strip("pagemesh://b/k/") == "b/k"
    assert strip("http://[::1]:8080/k") == "http://[::1]:8080/k"
    assert strip("pagemesh::http://[::1]:8080/k") == "http://[::1]:8080/k"


def test_open_seek_read(fs):
    with fs.open(path("basics/big.bin"), "rb") as f:
        assert f.seekable() and f.size == len(BIG)
        assert f.read(10) == BIG[:10]
        f.seek(2 * MiB - 5)
        assert f.read(10) == BIG[2 * MiB - 5:2 * MiB + 5]
        f.seek(-20, os.SEEK_END)
        assert f.read() == BIG[-20:]
        f.seek(MiB)
        buf = bytearray(300_000)
        assert f.readinto(buf) == len(buf)
        assert bytes(buf) == BIG[MiB:MiB + len(buf)]
        assert f.tell() == MiB + len(buf)
    with fs.open(path("basics/small.txt"), "r") as f:  # text mode
        assert f.read() == "hello pagemesh\n"
    with fs.open(path("basics/big.bin"), "rb", cache_type="none") as f:
        f.seek(12345)
        assert f.read(MiB) == BIG[12345:12345 + MiB]


def test_second_read_costs_no_origin_request(fs, proxy):
    p = path("basics/sub/deeper/c.bin")
    assert fs.cat_file(p) == FILES["basics/sub/deeper/c.bin"]
    assert origin_requests(proxy) > 0
    proxy.reset_stats()
    assert fs.cat_file(p) == FILES["basics/sub/deeper/c.bin"]
    with fs.open(p) as f:
        assert f.read() == FILES["basics/sub/deeper/c.bin"]
    assert origin_requests(proxy) == 0


def test_many_threads_read_at_once(fs):
    """The library is thread-safe and calls release the GIL: 8 threads
    reading overlapping ranges all get the right bytes."""
    p = path("basics/big.bin")
    rng = random.Random(11)
    jobs = [(rng.randrange(len(BIG)), rng.randrange(1, 2 * MiB))
            for _ in range(64)]

    def read(job):
        start, length = job
        if start % 2:
            return fs.cat_file(p, start, start + length)
        with fs.open(p) as f:
            f.seek(start)
            return f.read(length)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(read, jobs))
    for (start, length), data in zip(jobs, results):
        assert data == BIG[start:start + length]


def test_missing_key_raises_file_not_found(fs):
    missing = path("basics/no-such-key.bin")
    with pytest.raises(FileNotFoundError):
        fs.info(missing)
    with pytest.raises(FileNotFoundError) as raised:
        fs.cat_file(missing)
    assert "no-such-key.bin" in str(raised.value)
    with pytest.raises(FileNotFoundError):
        fs.open(missing, "rb")
    with pytest.raises(FileNotFoundError):
        fs.ls(path("no-such-prefix"))
    with pytest.raises(FileNotFoundError):
        fs.cat_file("no-such-bucket-pm/key")


def test_wrong_credentials_raise_permission_error(s3, proxy, tmp_path):
    bad = fsspec.filesystem(
        "pagemesh", target_protocol="s3",
        target_options=target_options(s3, proxy.url, secret="wrong-secret"),
        cache_dir=str(tmp_path / "bad-cache"), skip_instance_cache=True)
    with pytest.raises(PermissionError) as raised:
        bad.cat_file(path("basics/small.txt"))
    assert "small.txt" in str(raised.value)
    with pytest.raises(PermissionError):
        bad.ls(path("basics"))
    # not taken for missing data, as s3fs has it
    for check in (bad.exists, bad.isdir, bad.isfile):
        with pytest.raises(PermissionError):
            check(path("basics/small.txt"))


def test_other_credentials_for_the_same_peer_are_warned_about(s3, proxy,
                                                              tmp_path):
    """Two filesystems of one process on one cache share its peer, which
    keeps the credentials it opened with: the second's are not silently
    ignored."""
    cache = str(tmp_path / "shared-cache")
    first = fsspec.filesystem(
        "pagemesh", target_protocol="s3", cache_dir=cache,
        target_options=target_options(s3, proxy.url, secret="typo"),
        skip_instance_cache=True)
    with pytest.raises(PermissionError):
        first.cat_file(path("basics/small.txt"))
    second = fsspec.filesystem(
        "pagemesh", target_protocol="s3", cache_dir=cache,
        target_options=target_options(s3, proxy.url),
        skip_instance_cache=True)
    with pytest.warns(RuntimeWarning, match="AWS_SECRET_ACCESS_KEY"):
        second.peer
    assert second.peer is first.peer


def test_chained_url(s3, proxy, tmp_path):
    url = "pagemesh::s3://%s" % path("basics/big.bin")
    options = target_options(s3, proxy.url)
    cache = {"cache_dir": str(tmp_path / "chained")}
    with fsspec.open(url, "rb", s3=options, pagemesh=cache) as f:
        f.seek(MiB)
        assert f.read(100) == BIG[MiB:MiB + 100]
    fs, p = fsspec.core.url_to_fs(url, s3=options, pagemesh=cache)
    assert isinstance(fs, pagemesh.PagemeshFileSystem)
    assert fs.target_protocol == "s3" and p == path("basics/big.bin")
    assert fs.unstrip_protocol(p) == url
    # The chained path ("fo") is not part of the instance's identity.
    other, _ = fsspec.core.url_to_fs("pagemesh::s3://%s" % path(
        "basics/small.txt"), s3=options, pagemesh=cache)
    assert other is fs
    files = fsspec.open_files("pagemesh::s3://%s" % path("basics/sub/*.json"),
                              s3=options, pagemesh=cache)
    assert sorted(f.path for f in files) == [path("basics/sub/a.json"),
                                             path("basics/sub/b.json")]


def test_writes_pass_through_and_invalidate(fs, s3):
    p = path("writes/obj.bin")
    fs.pipe_file(p, b"first version")
    assert fs.cat_file(p) == b"first version"
    with fs.open(p, "wb") as f:
        f.write(b"second, longer version")
    assert fs.cat_file(p) == b"second, longer version"
    assert fs.size(p) == len(b"second, longer version")
    assert s3.client().get_object(Bucket=BUCKET, Key="writes/obj.bin")[
        "Body"].read() == b"second, longer version"
    fs.copy(p, path("writes/copy.bin"))
    assert fs.cat_file(path("writes/copy.bin")) == b"second, longer version"
    assert fs.ls(path("writes"), detail=False) == [path("writes/copy.bin"),
                                                   path("writes/obj.bin")]
    fs.rm(p)
    with pytest.raises(FileNotFoundError):
        fs.cat_file(p)
    assert fs.ls(path("writes"), detail=False) == [path("writes/copy.bin")]
    fs.rm(path("writes"), recursive=True)
    assert not fs.exists(path("writes/copy.bin"))
    # Protocol-prefixed and chained spellings reach the target as paths.
    fs.pipe_file("pagemesh://" + p, b"third")
    assert fs.cat_file(p) == b"third"
    fs.rm_file("pagemesh::s3://" + p)
    assert not fs.exists(p)


def test_refresh_and_invalidate_cache_ask_the_origin_again(fs, s3):
    p = path("refresh/obj.bin")
    fs.pipe_file(p, b"old")
    assert fs.ls(path("refresh"), detail=False) == [p]
    assert fs.cat_file(p) == b"old"
    # Behind the filesystem's back: only an invalidation or a refresh
    # sees it.
    s3.client().put_object(Bucket=BUCKET, Key="refresh/new.bin", Body=b"n")
    assert fs.ls(path("refresh"), detail=False) == [p]
    assert sorted(fs.ls(path("refresh"), detail=False, refresh=True)) == [
        path("refresh/new.bin"), p]
    s3.client().put_object(Bucket=BUCKET, Key="refresh/obj.bin",
                           Body=b"newer")
    assert fs.cat_file(p) == b"old"
    fs.invalidate_cache()
    assert fs.cat_file(p) == b"newer"
    fs.rm(path("refresh"), recursive=True)


def test_a_changed_object_is_never_cut_or_mixed(fs, s3):
    """An object rewritten behind the filesystem's back after its size was
    known, before its bytes were cached: whole-object, to-the-end and
    from-the-end reads give the new version whole (not its bytes cut at
    the old size or counted from the old end); a file opened before the
    change refuses to mix versions (FileExpired, as s3fs), and opened
    again it reads the new one."""
    client = s3.client()

    def rewrite(key, first, then, look):
        client.put_object(Bucket=BUCKET, Key=key, Body=first)
        look(path(key))  # the size is known, no byte is cached
        client.put_object(Bucket=BUCKET, Key=key, Body=then)
        return path(key)

    new = b"new and longer"
    p = rewrite("changing/whole", b"old", new, fs.info)
    assert fs.cat_file(p) == new
    p = rewrite("changing/peer", b"old", new, fs.info)
    assert fs.peer.read("s3://" + p) == new
    p = rewrite("changing/tail", b"0123456789", b"abcdefghijklmnopqrstuvwxyz",
                fs.info)
    assert fs.cat_file(p, start=-4) == b"wxyz"
    p = rewrite("changing/ranges", b"old", new,
                lambda p: fs.ls(path("changing")))
    q = rewrite("changing/ranges-tail", b"0123456789", b"abcdefghijkl",
                fs.info)
    assert fs.cat_ranges([p, q], [0, -3], [None, None]) == [new, b"jkl"]
    r = rewrite("changing/cat", b"old", new, fs.info)
    assert fs.cat([r, p]) == {r: new, p: new}
    # fsspec's cat passes start and end on to every path
    assert fs.cat([r, p], start=4, end=7) == {r: b"and", p: b"and"}
    size = 3 * MiB
    client.put_object(Bucket=BUCKET, Key="changing/open", Body=b"A" * size)
    p = path("changing/open")
    f = fs.open(p, cache_type="none")
    assert f.read(4) == b"AAAA"
    client.put_object(Bucket=BUCKET, Key="changing/open", Body=b"B" * size)
    f.seek(int(2.5 * MiB))
    with pytest.raises(pagemesh.FileExpired) as e:
        f.read(4)
    assert e.value.errno == 16 and "changed since" in str(e.value)
    with fs.open(p) as g:
        g.seek(int(2.5 * MiB))
        assert g.read(4) == b"BBBB"
    fs.rm(path("changing"), recursive=True)


def test_ukey_and_checksum_follow_the_version(fs):
    p = path("versions/obj.bin")
    fs.pipe_file(p, b"one")
    key1, sum1 = fs.ukey(p), fs.checksum(p)
    assert key1 == fs.ukey(p)
    fs.pipe_file(p, b"two")
    assert fs.ukey(p) != key1 and fs.checksum(p) != sum1


def test_peer_api(fs):
    peer = fs.peer
    uri = "s3://" + path("basics/big.bin")
    assert peer.stat(uri).size == len(BIG)
    assert peer.read(uri, MiB, 16) == BIG[MiB:MiB + 16]
    buf = bytearray(1000)
    assert peer.readinto(uri, 5, buf) == 1000 and bytes(buf) == BIG[5:1005]
    parts = peer.read_batch([(uri, 0, 10), (uri, 3 * MiB, 10_000)])
    assert parts == [BIG[:10], BIG[3 * MiB:3 * MiB + 10_000]]
    with peer.map(uri, MiB + 100, 4096) as m:
        assert len(m) == 4096 and bytes(m.data) == BIG[MiB + 100:MiB + 4196]
        view = m.data[:8]
    assert bytes(view) == BIG[MiB + 100:MiB + 108]  # still mapped: in use
    del view
    with pytest.raises(pagemesh.PagemeshError) as raised:
        peer.map(uri, MiB - 10, 20)  # crosses a page boundary
    assert raised.value.name == "PM_ERANGE"
    entries = peer.ls("s3://" + path("basics/sub"), recursive=True)
    assert [e.uri for e in entries] == ["s3://" + path("basics/sub/a.json"),
                                        "s3://" + path("basics/sub/b.json"),
                                        "s3://" + path(
                                            "basics/sub/deeper/c.bin")]
    status = peer.status()
    assert status["role"] == "node" and status["node_pid"] == os.getpid()
    stats = peer.stats()
    assert stats["bytes_served"] > 0 and stats["origin_bytes"] > 0


def test_peer_refuses_what_ctypes_would_wrap(tmp_path):
    """Offsets, lengths and 32-bit options out of range are errors, not
    numbers ctypes wraps around (read(uri, -1, 10) gave b"", a page size
    of 2**32 + 65536 opened with 64 KiB)."""
    data = tmp_path / "obj.bin"
    data.write_bytes(os.urandom(100_000))
    with pytest.raises(ValueError, match="too large"):
        pagemesh.Peer(cache_dir=str(tmp_path / "c0"), standalone=True,
                      page_size=2**32 + 65536)
    with pytest.raises(ValueError, match="not a boolean"):
        pagemesh.Peer(cache_dir=str(tmp_path / "c0"), standalone=True,
                      insecure_data="maybe")
    with pagemesh.Peer(cache_dir=str(tmp_path / "c1"),
                       standalone=True) as peer:
        for call in (lambda: peer.read(str(data), -1, 10),
                     lambda: peer.read(str(data), 0, -5),
                     lambda: peer.prefetch(str(data), -5, 0),
                     lambda: peer.read_batch([(str(data), 0, -1)]),
                     lambda: peer.map(str(data), -1, 10)):
            with pytest.raises(ValueError, match="negative"):
                call()
    # list options make a shared peer's key too (seeds as a list)
    from pagemesh.peer import _key
    hash(_key({"cache_dir": "x", "seeds": ["127.0.0.1:1", "127.0.0.1:2"]}))


def test_a_mapping_held_by_a_consumer_closes_later(tmp_path):
    """A mapping whose bytes a consumer holds (pyarrow.py_buffer exports
    the view) closes without raising, and is unmapped once let go; the
    peer closes then."""
    pa = pytest.importorskip("pyarrow")
    data = tmp_path / "obj.bin"
    data.write_bytes(os.urandom(100_000))
    peer = pagemesh.Peer(cache_dir=str(tmp_path / "c"), standalone=True)
    m = peer.map(str(data), 0, 4096)
    held = pa.py_buffer(m.data)
    m.close()  # raised BufferError
    assert held.to_pybytes() == data.read_bytes()[:4096]
    assert peer.close() is True and peer._handle is not None  # deferred
    del held
    peer._reap()
    assert peer._handle is None  # unmapped, then closed


def test_a_peer_used_after_fork_says_so(tmp_path):
    """A Peer opened before a fork has no threads in the child: a read
    there waited for ever; it is an error naming the way out."""
    data = tmp_path / "obj.bin"
    data.write_bytes(os.urandom(3_000_000))
    with pagemesh.Peer(cache_dir=str(tmp_path / "c"),
                       standalone=True) as peer:
        peer.read(str(data), 0, 10)
        pid = os.fork()
        if pid == 0:  # the child: exit 0 if told, 1 otherwise
            try:
                peer.read(str(data), 5, 2_900_000)
                os._exit(1)
            except RuntimeError as e:
                os._exit(0 if "shared_peer" in str(e) else 1)
            except BaseException:
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def test_private_peer_closes_cleanly(tmp_path):
    cache = str(tmp_path / "own")
    local = tmp_path / "f.bin"
    local.write_bytes(b"local bytes")
    with pagemesh.Peer(cache_dir=cache, page_size="64K",
                       disk_capacity="1G") as peer:
        assert peer.read(str(local)) == b"local bytes"
        assert peer.status()["page_size"] == 65536
    assert peer.closed
    with pytest.raises(ValueError):
        peer.read(str(local))
    with pytest.raises(TypeError):
        pagemesh.Peer(cache_dir=cache, no_such_option=1)


def _read_in_child(fs, p, queue):
    try:
        data = fs.cat_file(p)
        queue.put((hashlib.sha256(data).hexdigest(), fs.peer.role,
                   fs.peer.status()["node_pid"]))
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        queue.put(repr(e))


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_pickled_and_forked_filesystems_attach(fs, method):
    p = path("basics/big.bin")
    fs.cat_file(p, 0, 10)  # this process becomes the node peer
    clone = pickle.loads(pickle.dumps(fs))
    assert clone.cat_file(p, 0, 10) == BIG[:10]
    ctx = multiprocessing.get_context(method)
    queue = ctx.Queue()
    child = ctx.Process(target=_read_in_child, args=(fs, p, queue))
    child.start()
    answer = queue.get(timeout=120)
    child.join(60)
    assert answer == (hashlib.sha256(BIG).hexdigest(), "attached",
                      os.getpid())


def test_local_paths_relative_home_and_directories(tmp_path, monkeypatch):
    """Over local files: a relative path or one under "~" names the same
    file as its absolute path (names come back absolute, as from fsspec's
    local filesystem); find(withdirs) has the directories that hold no
    file; a directory's modified() is its mtime."""
    data = tmp_path / "data"
    (data / "empty" / "deeper").mkdir(parents=True)
    (data / "sub").mkdir()
    (data / "sub" / "f.txt").write_bytes(b"sub file")
    (data / "top.txt").write_bytes(b"top file")
    fs = fsspec.filesystem("pagemesh", target_protocol="file",
                           cache_dir=str(tmp_path / "cache"),
                           skip_instance_cache=True)
    root = str(data)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert fs.cat_file("data/top.txt") == b"top file"
    assert fs.cat_file("~/data/sub/f.txt") == b"sub file"
    assert fs.info("data/top.txt")["name"] == root + "/top.txt"
    assert fs.ls("data", detail=False) == fs.ls(root, detail=False)
    assert fs.find("~/data") == [root + "/sub/f.txt", root + "/top.txt"]
    # With the directory itself, as fsspec's find(withdirs) has it.
    assert fs.find("data", withdirs=True) == [
        root, root + "/empty", root + "/empty/deeper", root + "/sub",
        root + "/sub/f.txt", root + "/top.txt"]
    assert fs.find(root, withdirs=True, maxdepth=1) == [
        root, root + "/empty", root + "/sub", root + "/top.txt"]
    os.utime(data / "empty", (1_600_000_000, 1_600_000_000))
    assert fs.modified(root + "/empty").timestamp() == 1_600_000_000
    assert fs.modified("data/top.txt").timestamp() == pytest.approx(
        os.stat(data / "top.txt").st_mtime, abs=1)


def test_a_prefix_has_no_modified_time(fs):
    with pytest.raises(IsADirectoryError):
        fs.modified(path("basics/sub"))


def test_paths_with_a_leading_slash_or_dots_list_what_exists(fs, tmp_path):
    """find and glob name only what exists, whatever the spelling of the
    path: "/bucket/key" as s3fs takes it; a local path with "." and ".."
    as the peer resolves it."""
    sub = path("basics/sub")
    assert fs.find("/" + sub, withdirs=True) == fs.find(sub, withdirs=True)
    assert fs.glob("/" + path("basics/*")) == fs.glob(path("basics/*"))
    assert fs.info("/" + path("basics/small.txt"))["name"] == \
        path("basics/small.txt")
    d = tmp_path / "local"
    (d / "sub").mkdir(parents=True)
    (d / "sub" / "x.txt").write_bytes(b"x")
    local = fsspec.filesystem("pagemesh", target_protocol="file",
                              cache_dir=str(tmp_path / "cache"),
                              skip_instance_cache=True)
    real = str(d / "sub" / "x.txt")
    assert local.find(str(d) + "/./sub") == [real]
    assert local.glob(str(d) + "/sub/../sub/*") == [real]
    assert local.find(str(d) + "//sub", withdirs=True) == [
        str(d / "sub"), real]


def test_a_local_directory_read_as_a_file_is_a_directory_error(tmp_path):
    (tmp_path / "d").mkdir()
    local = fsspec.filesystem("pagemesh", target_protocol="file",
                              cache_dir=str(tmp_path / "cache"),
                              skip_instance_cache=True)
    with pytest.raises(IsADirectoryError):
        local.open(str(tmp_path / "d"))
    with pytest.raises(IsADirectoryError):
        local.cat_file(str(tmp_path / "d"))
    with pytest.raises(FileNotFoundError):
        local.cat_file(str(tmp_path / "missing"))


def test_the_instances_of_every_thread_share_listings(fs):
    """fsspec makes an instance per thread: a write through one is not
    hidden from another by a listing it kept."""
    d = path("threads")
    fs.pipe_file(d + "/a", b"a")
    options = dict(target_protocol="s3", target_options=fs.target_options,
                   **fs.peer_options)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        other = pool.submit(fsspec.filesystem, "pagemesh", **options).result()
        assert other is not fs
        assert pool.submit(other.ls, d, False).result() == [d + "/a"]
        fs.pipe_file(d + "/b", b"bb")
        assert pool.submit(other.ls, d, False).result() == [d + "/a",
                                                             d + "/b"]
        assert pool.submit(other.info, d + "/b").result()["size"] == 2
    fs.rm(d, recursive=True)


def test_writes_committed_later_or_dropped_unclosed_are_seen(fs, s3):
    p = path("later/obj.bin")
    fs.pipe_file(p, b"old")
    assert fs.cat_file(p) == b"old"
    # In a transaction the bytes reach the origin at commit, after close:
    # a read in between caches the old version's metadata again.
    with fs.transaction:
        with fs.open(p, "wb") as f:
            f.write(b"newer")
        assert fs.cat_file(p) == b"old"
    assert fs.cat_file(p) == b"newer"

    def write_and_drop():
        fs.open(p, "wb").write(b"newest!")  # never closed: s3fs commits

    write_and_drop()
    import gc
    gc.collect()
    assert s3.client().get_object(Bucket=BUCKET, Key="later/obj.bin")[
        "Body"].read() == b"newest!"
    assert fs.cat_file(p) == b"newest!"
    fs.rm(p)


def test_a_pickled_file_reads_the_version_it_was_opened_at(fs):
    p = path("pinned/obj.bin")
    fs.pipe_file(p, b"A" * 100)
    f = fs.open(p, block_size=16)
    assert f.read(10) == b"A" * 10
    blob = pickle.dumps(f)
    clone = pickle.loads(blob)
    assert clone.tell() == 10 and clone.read(5) == b"A" * 5
    fs.pipe_file(p, b"B" * 200)
    later = pickle.loads(blob)
    with pytest.raises(pagemesh.FileExpired):
        later.read()
    fs.rm(p)
