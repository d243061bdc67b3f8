"""The `pagemesh` command against a real S3-compatible server that checks
SigV4 (moto with authentication on), behind a proxy that counts every
request reaching the origin. Each `pagemesh` call is a new process, so
every test here also checks what survives a restart."""

import hashlib
import os
import random
import subprocess
import threading

import pytest

from harness.pagemesh_cli import PagemeshCLI
from harness.s3server import S3Server
from harness.httpserver import HTTPOrigin

BUCKET = "pm-cli"
MiB = 1024 * 1024
BIG = random.Random(1).randbytes(3 * MiB + 12345)      # 4 pages
SMALL = {"small/%02d.bin" % i: random.Random(i).randbytes(50_000 + i)
         for i in range(10)}


@pytest.fixture(scope="module")
def s3():
    with S3Server() as server:
        server.create_bucket(BUCKET)
        server.put_object(BUCKET, "big.bin", BIG)
        server.put_objects(BUCKET, SMALL)
        yield server


def origin_counts(proxy):
    s = proxy.stats()
    return s["requests"].get("GET", 0), s["requests"].get("HEAD", 0)


def page_files(cache_dir):
    out = []
    for root, _, files in os.walk(os.path.join(cache_dir, "pages")):
        out += [os.path.join(root, f) for f in files if f.endswith(".pg")]
    return out


def test_second_read_costs_zero_origin_requests(cli, proxy):
    assert cli.cat("s3://%s/big.bin" % BUCKET) == BIG
    gets, heads = origin_counts(proxy)
    assert gets == 4 and heads == 1
    proxy.reset_stats()
    # A new process: the pages and the metadata come from the cache dir.
    assert cli.cat("s3://%s/big.bin" % BUCKET) == BIG
    assert origin_counts(proxy) == (0, 0)
    stats = cli.json("stats", "--json")
    assert stats["origin_bytes"] == len(BIG)
    assert stats["hits_disk"] + stats["hits_ram"] >= 4
    assert stats["bytes_served"] == 2 * len(BIG)
    # A stats.json that is not one of ours (too large, a planted file) is
    # not read: the totals start again from this process's counters.
    path = os.path.join(cli.cache_dir, "stats.json")
    with open(path, "w") as f:
        f.write('{"reads": 1000000, "pad": "%s"}' % ("x" * (128 << 10)))
    assert cli.cat("s3://%s/big.bin" % BUCKET) == BIG
    stats = cli.json("stats", "--json")
    assert stats["reads"] < 1000000 and stats["bytes_served"] == len(BIG)


def test_ranges_and_get(cli, tmp_path):
    uri = "s3://%s/big.bin" % BUCKET
    part = cli.cat(uri, "--offset", str(MiB - 10), "--length", "100000")
    assert part == BIG[MiB - 10:MiB - 10 + 100000]
    out = tmp_path / "copy.bin"
    cli.run("get", uri, str(out), check=True)
    assert out.read_bytes() == BIG


def test_restart_of_a_daemon_keeps_the_cache(cli, proxy):
    daemon = cli.start_daemon()
    assert cli.cat("s3://%s/big.bin" % BUCKET) == BIG
    daemon.kill()  # no clean shutdown at all
    daemon.wait()
    proxy.reset_stats()
    daemon = cli.start_daemon()
    try:
        assert cli.cat("s3://%s/big.bin" % BUCKET) == BIG
        assert origin_counts(proxy) == (0, 0)
    finally:
        daemon.terminate()
        daemon.wait()


def test_corrupt_page_is_refetched_never_served(cli, proxy):
    uri = "s3://%s/big.bin" % BUCKET
    assert cli.cat(uri) == BIG
    files = page_files(cli.cache_dir)
    assert len(files) == 4
    victim = sorted(files)[0]
    with open(victim, "r+b") as f:  # flip a byte of the page data
        f.seek(4096 + 777)
        b = f.read(1)
        f.seek(4096 + 777)
        f.write(bytes([b[0] ^ 0x55]))
    proxy.reset_stats()
    assert cli.cat(uri) == BIG
    gets, heads = origin_counts(proxy)
    assert gets == 1 and heads == 0


def test_truncated_page_file_is_refetched(cli, proxy):
    uri = "s3://%s/big.bin" % BUCKET
    assert cli.cat(uri) == BIG
    victim = sorted(page_files(cli.cache_dir))[1]
    os.truncate(victim, 4096 + 1000)
    proxy.reset_stats()
    assert cli.cat(uri) == BIG
    assert origin_counts(proxy)[0] == 1


def test_concurrent_cold_readers_cause_one_origin_read_per_page(cli, proxy):
    uri = "s3://%s/big.bin" % BUCKET
    procs = [subprocess.Popen(cli.command("cat", uri), env=cli.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(8)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert out == BIG
    gets, heads = origin_counts(proxy)
    assert gets == 4, "each page fetched once, got %d GETs" % gets
    assert heads == 1


def test_stat_and_ls(cli):
    st = cli.json("stat", "s3://%s/big.bin" % BUCKET, "--json")
    assert st["size"] == len(BIG)
    assert st["version"] == hashlib.md5(BIG).hexdigest()
    top = cli.json("ls", "s3://%s/" % BUCKET, "--json")
    names = [e["uri"] for e in top]
    assert "s3://%s/big.bin" % BUCKET in names
    assert "s3://%s/small/" % BUCKET in names
    assert [e["type"] for e in top if e["uri"].endswith("small/")] == \
        ["directory"]
    deep = cli.json("ls", "s3://%s/small" % BUCKET, "--json", "-r")
    assert len(deep) == len(SMALL)
    assert {e["size"] for e in deep} == {len(v) for v in SMALL.values()}


def test_listing_fills_the_metadata_cache(cli, proxy):
    cli.json("ls", "s3://%s/small/" % BUCKET, "--json")
    proxy.reset_stats()
    for key, data in SMALL.items():
        assert cli.cat("s3://%s/%s" % (BUCKET, key)) == data
    gets, heads = origin_counts(proxy)
    assert heads == 0 and gets == len(SMALL)


def test_changed_object_is_never_served_old_bytes(cli, s3):
    uri = "s3://%s/changing.bin" % BUCKET
    s3.put_object(BUCKET, "changing.bin", b"A" * 300_000)
    assert cli.cat(uri, "--meta-ttl", "0") == b"A" * 300_000
    s3.put_object(BUCKET, "changing.bin", b"B" * 200_000)
    assert cli.cat(uri, "--meta-ttl", "0") == b"B" * 200_000


def test_a_read_that_finds_the_object_gone_forgets_its_metadata(cli, s3,
                                                                 proxy):
    """A stat kept on disk, the object deleted at the origin: the next read
    fails with PM_ENOENT and drops that metadata, so that the next stat
    asks the origin instead of answering for a missing object until the
    metadata's TTL runs out."""
    uri = "s3://%s/deleted.bin" % BUCKET
    s3.put_object(BUCKET, "deleted.bin", b"D" * 100_000)
    assert b"size:    100000" in cli.run("stat", uri, check=True).stdout
    s3.delete_object(BUCKET, "deleted.bin")
    proxy.reset_stats()
    assert b"size:    100000" in cli.run("stat", uri, check=True).stdout
    assert origin_counts(proxy) == (0, 0)  # the metadata cache answered
    r = cli.run("cat", uri)
    assert r.returncode == 1 and b"PM_ENOENT" in r.stderr, r.stderr
    r = cli.run("stat", uri)
    assert r.returncode == 1 and b"PM_ENOENT" in r.stderr, r.stderr
    assert origin_counts(proxy) == (1, 1)


def test_errors_name_the_object(cli, build_dir, tmp_path):
    r = cli.run("cat", "s3://%s/no/such/key" % BUCKET)
    assert r.returncode == 1
    assert b"PM_ENOENT" in r.stderr and b"no/such/key" in r.stderr
    assert r.stderr.count(b"no/such/key") == 1, r.stderr  # named once
    # as cat(1): each failing object is said, the others still printed
    one, two = ("s3://%s/small/0%d.bin" % (BUCKET, i) for i in (1, 2))
    r = cli.run("cat", one, "s3://%s/no/such/key" % BUCKET, two)
    assert r.returncode == 1 and b"no/such/key" in r.stderr
    assert r.stdout == SMALL["small/01.bin"] + SMALL["small/02.bin"]
    r = cli.run("cat", "s3://no-such-bucket-pm/key")
    assert r.returncode == 1 and b"PM_ENOENT" in r.stderr
    r = cli.run("cat", "gopher://x/y")
    assert r.returncode == 1 and b"PM_EBADURI" in r.stderr
    r = cli.run("cat", "s3://%s/big.bin" % BUCKET,
                env={"AWS_SECRET_ACCESS_KEY": "wrong-secret"})
    assert r.returncode == 1 and b"PM_EACCES" in r.stderr
    dead = PagemeshCLI(build_dir, str(tmp_path / "c2"),
                       {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"})
    r = dead.run("cat", "s3://%s/big.bin" % BUCKET)
    assert r.returncode == 1 and b"PM_EUNREACHABLE" in r.stderr


def test_output_that_cannot_be_written_is_an_error(cli):
    """A closed stdout or a full device is exit 1 with "write error", as in
    coreutils; a closed stdout is never taken over by a file the command
    opens (the cache's lock file once received the object)."""
    uri = "s3://%s/small/03.bin" % BUCKET
    for command in (["cat", uri], ["ls", "s3://%s/small/" % BUCKET],
                    ["stat", uri], ["version"]):
        closed = subprocess.run(cli.command(*command),
                                stderr=subprocess.PIPE, env=cli.env,
                                timeout=60, preexec_fn=lambda: os.close(1))
        assert closed.returncode == 1, (command, closed.stderr)
        assert b"write error" in closed.stderr, (command, closed.stderr)
        with open("/dev/full", "wb") as full:
            r = subprocess.run(cli.command(*command), stdout=full,
                               stderr=subprocess.PIPE, env=cli.env,
                               timeout=60)
        assert r.returncode == 1 and b"write error" in r.stderr, command
    lock = os.path.join(cli.cache_dir, "node.lock")
    assert not os.path.exists(lock) or os.path.getsize(lock) < 4096


def test_get_writes_into_what_it_is_given(cli, tmp_path):
    """get writes a plain file aside and renames it over (keeping the mode
    of the file it replaces); into a symlink, a FIFO or a file with other
    links it writes in place, as cp does; "-" is stdout."""
    uri = "s3://%s/small/04.bin" % BUCKET
    data = SMALL["small/04.bin"]
    plain = tmp_path / "plain"
    plain.write_bytes(b"old")
    plain.chmod(0o600)
    cli.run("get", uri, str(plain), check=True)
    assert plain.read_bytes() == data
    assert plain.stat().st_mode & 0o777 == 0o600
    real, link = tmp_path / "real", tmp_path / "link"
    real.write_bytes(b"old")
    link.symlink_to(real)
    cli.run("get", uri, str(link), check=True)
    assert link.is_symlink() and real.read_bytes() == data
    other = tmp_path / "other-name"
    os.link(real, other)
    cli.run("get", uri.replace("04", "05"), str(real), check=True)
    assert other.read_bytes() == SMALL["small/05.bin"]
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    cli.run("get", uri, str(fifo), check=True)
    reader.join(30)
    assert got == [data] and fifo.is_fifo()
    assert cli.run("get", uri, "-", check=True).stdout == data
    assert not list(tmp_path.glob("*.part"))


def test_unwritable_cache_directory_is_a_clear_error(build_dir, tmp_path, s3,
                                                     proxy):
    blocker = tmp_path / "not-a-dir"
    blocker.write_bytes(b"x")
    cli = PagemeshCLI(build_dir, str(blocker / "cache"), s3.env())
    r = cli.run("cat", "s3://%s/big.bin" % BUCKET)
    assert r.returncode == 1
    assert str(blocker).encode() in r.stderr
    assert not os.path.exists(str(blocker / "cache"))


def test_full_disk_degrades_to_pass_through(build_dir, tmp_path, s3, proxy):
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1600k", "tmpfs",
                        str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: %s" % r.stderr.decode())
    try:
        cli = PagemeshCLI(build_dir, str(mnt / "cache"),
                          s3.env(endpoint=proxy.url))
        # Capacity says 8 GiB but the disk holds ~1 page: reads must work.
        assert cli.cat("s3://%s/big.bin" % BUCKET) == BIG
        assert cli.cat("s3://%s/big.bin" % BUCKET) == BIG
        for f in page_files(str(mnt / "cache")):
            assert os.path.getsize(f) in (4096 + MiB, 4096 + len(BIG) - 3 * MiB)
    finally:
        subprocess.run(["umount", "-l", str(mnt)])


def test_http_origin_second_read_is_free(cli):
    with HTTPOrigin() as web:
        data = random.Random(5).randbytes(2 * MiB + 7)
        web.put("/data/file.bin", data)
        assert cli.cat(web.url("/data/file.bin")) == data
        before = dict(web.counts)
        assert cli.cat(web.url("/data/file.bin")) == data
        assert web.counts == before
