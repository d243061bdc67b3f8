"""The read-only mount (bindings/fuse, `pagemesh-mount`) with real
processes: a FUSE mount of an S3 prefix on the local S3-compatible server,
read with plain file calls. Directories are the origin's prefixes, files
its objects, byte-exact whole and in ranges; nothing can be written; a
second read costs no origin request; an origin that fails is EIO with
the reason in the mount's log; with a pagemeshd on the cache directory
the mount attaches to it and reads through its cache."""

import concurrent.futures
import errno
import os
import random
import signal
import subprocess
import time

import pytest

from harness.pagemesh_cli import stop

BUCKET = "pm-fuse"
MiB = 1024 * 1024
OBJECTS = {
    "ds/a.bin": random.Random(1).randbytes(3 * MiB + 17),
    "ds/empty": b"",
    "ds/sub/b.bin": random.Random(2).randbytes(100000),
    "ds/sub/deeper/c.txt": b"hello\n",
    # A directory whose only child has its name, and an S3 "folder" that
    # holds only its marker object (an empty directory).
    "ds/ckpt/ckpt": b"last step\n",
    "ds/folder/": b"",
    "other/x.bin": b"not under the mount",
}
PAGES = sum((len(v) + MiB - 1) // MiB for k, v in OBJECTS.items()
            if k.startswith("ds/"))


def page_gets(proxy):
    """Object GETs the origin served (listings are GETs with a query)."""
    return sum(1 for r in proxy.stats()["recent"]
               if r["method"] == "GET" and "?" not in r["path"])


class Mount:
    """pagemesh-mount of s3://BUCKET/ds at a fresh directory."""

    def __init__(self, cli, tmp_path, prefix="ds", *flags):
        self.cli = cli
        self.point = str(tmp_path / "mnt")
        os.makedirs(self.point, exist_ok=True)
        self.log = open(str(tmp_path / "mount.log"), "w+")
        self.proc = cli.popen(
            [os.path.join(cli.build_dir, "pagemesh-mount"), "--cache-dir",
             cli.cache_dir] + list(flags) + [
                "s3://%s/%s" % (BUCKET, prefix), self.point],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not os.path.ismount(self.point):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.log.seek(0)
                raise RuntimeError("not mounted: " + self.log.read())
            time.sleep(0.05)

    def path(self, *parts):
        return os.path.join(self.point, *parts)

    def unmount(self):
        if os.path.ismount(self.point):
            subprocess.run(["fusermount3", "-u", self.point], check=True,
                           timeout=30)
        rc = self.proc.wait(timeout=30)
        self.log.seek(0)
        return rc, self.log.read()


@pytest.fixture
def mount(cli, tmp_path):
    m = Mount(cli, tmp_path)
    yield m
    if m.proc.poll() is None:
        m.unmount()


def test_directories_files_and_bytes(mount, proxy):
    # The mount is the node peer here (no pagemeshd on its directory).
    assert sorted(os.listdir(mount.point)) == ["a.bin", "ckpt", "empty",
                                               "folder", "sub"]
    assert sorted(os.listdir(mount.path("sub"))) == ["b.bin", "deeper"]
    assert os.listdir(mount.path("sub", "deeper")) == ["c.txt"]
    assert os.path.isdir(mount.path("sub", "deeper"))
    assert os.listdir(mount.path("ckpt")) == ["ckpt"]
    assert os.path.isdir(mount.path("folder"))
    assert os.listdir(mount.path("folder")) == []
    # a directory's times are the mount's start, not 1970
    assert abs(os.stat(mount.path("sub")).st_mtime - time.time()) < 600
    for key, data in OBJECTS.items():
        if not key.startswith("ds/") or key.endswith("/"):
            continue
        path = mount.path(*key[3:].split("/"))
        st = os.stat(path)
        assert st.st_size == len(data) and not os.path.isdir(path), key
        with open(path, "rb") as f:
            assert f.read() == data, key
    # Ranges, across a page boundary.
    with open(mount.path("a.bin"), "rb") as f:
        f.seek(MiB - 100)
        assert f.read(5000) == OBJECTS["ds/a.bin"][MiB - 100:MiB + 4900]
        f.seek(3 * MiB)
        assert f.read() == OBJECTS["ds/a.bin"][3 * MiB:]
    # Each page came from the origin once; reading again costs nothing.
    assert page_gets(proxy) == PAGES
    for name in ("a.bin", "sub/b.bin"):
        with open(mount.path(*name.split("/")), "rb") as f:
            assert f.read() == OBJECTS["ds/" + name]
    assert page_gets(proxy) == PAGES


def stop_signals_blocked(pid, tid):
    """Whether thread tid of pid blocks SIGHUP, SIGINT and SIGTERM."""
    with open("/proc/%d/task/%d/status" % (pid, tid)) as f:
        mask = int(next(line for line in f
                        if line.startswith("SigBlk:")).split()[1], 16)
    want = (1 << (signal.SIGHUP - 1)) | (1 << (signal.SIGINT - 1)) | \
        (1 << (signal.SIGTERM - 1))
    return mask & want == want


def test_only_the_main_thread_takes_stop_signals(mount):
    """FUSE's handlers end the loop and unmount from the main thread; a
    stop signal taken by any other thread (the peer's, FUSE's workers)
    would interrupt its work instead (a node connect cut short, a
    spurious takeover at shutdown)."""
    def read(name):
        with open(mount.path(*name.split("/")), "rb") as f:
            return f.read()
    names = ["a.bin", "sub/b.bin", "sub/deeper/c.txt"] * 4
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert all(pool.map(read, names))
    pid = mount.proc.pid
    tids = sorted(int(t) for t in os.listdir("/proc/%d/task" % pid))
    assert len(tids) > 2
    assert not stop_signals_blocked(pid, pid)
    assert [t for t in tids
            if t != pid and not stop_signals_blocked(pid, t)] == []
    assert mount.unmount()[0] == 0


def list_requests(proxy):
    return sum(1 for r in proxy.stats()["recent"]
               if r["method"] == "GET" and "list-type" in r["path"])


def test_a_directory_is_known_from_one_listing_request(cli, tmp_path,
                                                       proxy):
    # The origin answers one key per listing page here: listing "sub"
    # takes two pages, telling that it is a directory takes one.
    cli.env["PAGEMESH_S3_MAX_KEYS"] = "1"
    mount = Mount(cli, tmp_path)
    try:
        proxy.reset_stats()
        assert os.path.isdir(mount.path("sub"))
        assert list_requests(proxy) == 1
        proxy.reset_stats()
        assert sorted(os.listdir(mount.path("sub"))) == ["b.bin", "deeper"]
        assert list_requests(proxy) == 2
    finally:
        rc, log = mount.unmount()
    assert rc == 0, log


def test_missing_names_and_writes_are_refused(mount):
    with pytest.raises(FileNotFoundError):
        os.stat(mount.path("nope"))
    with pytest.raises(FileNotFoundError):
        os.listdir(mount.path("sub", "nothing"))
    # Objects outside the mounted prefix (s3://pm-fuse/other/x.bin) are
    # not reachable through it.
    with pytest.raises(FileNotFoundError):
        os.stat(mount.path("other", "x.bin"))
    for attempt in (lambda: open(mount.path("new"), "wb"),
                    lambda: open(mount.path("a.bin"), "r+b"),
                    lambda: os.mkdir(mount.path("d")),
                    lambda: os.unlink(mount.path("a.bin"))):
        with pytest.raises(OSError) as e:
            attempt()
        assert e.value.errno in (errno.EROFS, errno.EACCES), e.value
    st = os.statvfs(mount.point)
    assert st.f_blocks > 0
    rc, log = mount.unmount()
    assert rc == 0, log


def test_an_origin_failure_is_eio_with_its_reason_logged(mount, proxy):
    path = mount.path("sub", "b.bin")
    assert os.stat(path).st_size == len(OBJECTS["ds/sub/b.bin"])
    proxy.fail_next(1000, status=503)
    with pytest.raises(OSError) as e:
        with open(path, "rb") as f:
            f.read()
    assert e.value.errno == errno.EIO, e.value
    # Nothing is lost: once the origin answers, the same read succeeds.
    proxy.fail_next(0)
    with open(path, "rb") as f:
        assert f.read() == OBJECTS["ds/sub/b.bin"]
    rc, log = mount.unmount()
    assert rc == 0, log
    assert "pagemesh-mount: /sub/b.bin: " in log and "(PM_E" in log, log


def test_an_object_deleted_while_open_is_estale(mount, s3):
    s3.put_object(BUCKET, "ds/gone.bin", b"g" * 5000)
    try:
        with open(mount.path("gone.bin"), "rb") as f:
            s3.delete_object(BUCKET, "ds/gone.bin")
            with pytest.raises(OSError) as e:
                f.read()
        assert e.value.errno == errno.ESTALE, e.value
    finally:
        s3.delete_object(BUCKET, "ds/gone.bin")
    rc, log = mount.unmount()
    assert rc == 0, log
    assert "/gone.bin" in log and "PM_ENOENT" in log, log


def test_an_object_changed_while_open_is_estale_not_mixed(mount, s3):
    """A file's reads all come from the version it was opened at: a part
    read after the object was rewritten at the origin (not cached yet) is
    ESTALE, never the new version's bytes after the old one's; opened
    again, it reads the new version."""
    size = 3 * 1024 * 1024
    s3.put_object(BUCKET, "ds/changing.bin", b"A" * size)
    try:
        with open(mount.path("changing.bin"), "rb", buffering=0) as f:
            assert f.read(4) == b"AAAA"
            s3.put_object(BUCKET, "ds/changing.bin", b"B" * size)
            f.seek(size - 4096)
            with pytest.raises(OSError) as e:
                f.read(4)
        assert e.value.errno == errno.ESTALE, e.value
        with open(mount.path("changing.bin"), "rb", buffering=0) as f:
            f.seek(size - 4096)
            assert f.read(4) == b"BBBB"
    finally:
        s3.delete_object(BUCKET, "ds/changing.bin")
    rc, log = mount.unmount()
    assert rc == 0, log
    assert "PM_ECHANGED" in log, log


def test_a_same_size_rewrite_in_the_same_second_is_seen(cli, tmp_path, s3):
    """The kernel keeps a file's pages only while its version is the one
    they came from: an object rewritten with the same size within the
    same second (S3's mtime does not move) is read whole in its new
    version once the metadata expires, never the old cached pages
    followed by new ones."""
    size = 3 * MiB
    s3.put_object(BUCKET, "same/other", b"keeps the prefix")
    m = Mount(cli, tmp_path, "same", "--meta-ttl", "500")
    try:
        time.sleep(1.02 - time.time() % 1)  # both writes in one second
        s3.put_object(BUCKET, "same/f.bin", b"A" * size)
        with open(m.path("f.bin"), "rb") as f:
            assert f.read(100) == b"A" * 100
        s3.put_object(BUCKET, "same/f.bin", b"B" * size)
        time.sleep(1.5)
        with open(m.path("f.bin"), "rb") as f:
            data = f.read()
        assert data == b"B" * size, data.count(b"A")
    finally:
        s3.delete_object(BUCKET, "same/f.bin")
        s3.delete_object(BUCKET, "same/other")
        rc, log = m.unmount()
    assert rc == 0, log


def test_names_a_path_cannot_hold(cli, tmp_path, s3):
    """An object "dup" next to the prefix "dup/" is listed once (the
    object, as stat finds it); keys with "." or ".." components are not
    listed as the directory's own entries."""
    keys = ("names/dup", "names/dup/inner", "names/dots/./x",
            "names/dots/../y", "names/dots/z",
            # sorted between "dup" and "dup/": "-" and "." come before "/"
            "names/dup-1", "names/dup.txt")
    for key in keys:
        s3.put_object(BUCKET, key, b"x")
    m = Mount(cli, tmp_path, "names")
    try:
        assert sorted(os.listdir(m.point)) == ["dots", "dup", "dup-1",
                                               "dup.txt"]
        assert os.path.isfile(m.path("dup"))
        names = os.listdir(m.path("dots"))
        assert names.count(".") == 0 and names.count("..") == 0
        assert "z" in names
    finally:
        for key in keys:
            s3.delete_object(BUCKET, key)
        rc, log = m.unmount()
    assert rc == 0, log


def test_a_mount_that_could_serve_nothing_is_refused(cli, tmp_path):
    """A mistyped bucket or prefix, a bad URI, a mount point that is not a
    directory: refused at start (exit 1, the reason said), not mounted to
    fail every call or to look like an empty dataset."""
    point = tmp_path / "mnt"
    point.mkdir()
    a_file = tmp_path / "file"
    a_file.write_text("x")
    empty = tmp_path / "empty"
    empty.mkdir()
    tool = os.path.join(cli.build_dir, "pagemesh-mount")
    for origin, where, says in (
            ("s3://pm-no-such-bucket/x", point, "nothing there"),
            (str(empty), point, "nothing there"),  # it mounted, empty
            ("file://%s" % empty, point, "nothing there"),
            ("s3://%s/no-such-prefix" % BUCKET, point, "nothing there"),
            ("gopher://x/y", point, "PM_EBADURI"),
            ("s3://%s/ds" % BUCKET, a_file, "not a directory")):
        r = subprocess.run([tool, "--cache-dir", cli.cache_dir, origin,
                            str(where)], env=cli.env, capture_output=True,
                           timeout=60)
        assert r.returncode == 1, (origin, r.stderr)
        assert says.encode() in r.stderr, (origin, r.stderr)
        assert not os.path.ismount(point)


def test_mount_attaches_to_the_node_peer_and_unmounts(cli, tmp_path, proxy):
    daemon = cli.start_daemon()
    try:
        m = Mount(cli, tmp_path)
        try:
            status = cli.node_status()
            assert m.proc.pid in status["attached"], status
            with open(m.path("sub", "b.bin"), "rb") as f:
                assert f.read() == OBJECTS["ds/sub/b.bin"]
            # Read through the daemon: its cache holds the page now, and
            # another process reads it from there.
            assert cli.node_status()["stats"]["misses"] == 1
            assert cli.cat("s3://%s/ds/sub/b.bin" % BUCKET) == \
                OBJECTS["ds/sub/b.bin"]
            assert page_gets(proxy) == 1
        finally:
            # SIGTERM ends it cleanly: unmounted, exit status 0.
            m.proc.send_signal(signal.SIGTERM)
            rc = m.proc.wait(timeout=30)
        assert rc == 0
        assert not os.path.ismount(m.point)
    finally:
        stop(daemon)
