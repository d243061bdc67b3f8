"""The HTTP(S) origin connector (ufs/http.c) against plain HTTP servers
that behave in the ways real ones do: Range honoured or ignored, ETag or
none, Last-Modified or none, HEAD refused, If-Match ignored - driven
through pm_ufs_driver."""

import json
import os
import random
import subprocess
import sys
import time
import urllib.request

import pytest

from harness import util
from harness.httpserver import HTTPOrigin
from harness.ufs_driver import Driver
from origin_proxy import OriginProxy

DATA = random.Random(11).randbytes(3 * 1024 * 1024 + 17)
RANGES = [(0, 1), (0, 4096), (5, 100), (2 * 1024 * 1024, 65536),
          (len(DATA) - 10, 10), (len(DATA) - 10, 1000), (0, len(DATA))]


@pytest.fixture
def driver(tmp_path):
    return Driver(util.clean_env(tmp_path))


def origin(**switches):
    web = HTTPOrigin(**switches).start()
    web.put("/data.bin", DATA)
    web.put("/empty", b"")
    return web


@pytest.fixture(scope="module")
def normal():
    with origin() as web:
        yield web


@pytest.fixture(scope="module")
def no_range():
    with origin(honour_range=False) as web:
        yield web


def test_stat_uses_etag_as_version(normal, driver):
    st = driver.stat(normal.url("/data.bin"))
    assert st["size"] == len(DATA)
    assert st["version"] == normal.objects["/data.bin"].etag.strip('"')
    assert st["mtime_ns"] == normal.objects["/data.bin"].mtime * 10**9


@pytest.mark.parametrize("offset,length", RANGES)
def test_ranged_reads(normal, driver, offset, length):
    assert driver.read(normal.url("/data.bin"), offset, length) == \
        DATA[offset:offset + length]


@pytest.mark.parametrize("offset,length", RANGES)
def test_server_ignoring_range_still_gives_right_bytes(no_range, driver,
                                                       offset, length):
    res = driver.run("read", no_range.url("/data.bin"), offset, length)
    assert res.check().stdout == DATA[offset:offset + length]
    # The transfer stops once the window is full (curl may have a little
    # more in flight), it does not download the rest of the object.
    assert res.bytes <= min(offset + length, len(DATA)) + 1024 * 1024
    # Reading from past the start costs the bytes before it: said, so that
    # a slow origin has its reason in the log.
    assert ("ignores Range" in res.stderr) == (offset > 0), res.stderr


def test_an_object_of_a_server_ignoring_range_is_fetched_once(no_range,
                                                              build_dir,
                                                              tmp_path):
    """Read page by page, an object of a server that ignores Range costs
    its size once, not its start again for every page (quadratic: 64 KiB
    pages of 16 MiB cost 2 GiB): the first whole answer is kept in a
    scratch file for the other pages, and the readers that asked at the
    same time wait for it. The bytes are right, and a second read of
    another version is fetched anew."""
    from harness.pagemesh_cli import PagemeshCLI
    big = random.Random(5).randbytes(16 * 1024 * 1024 + 5)
    no_range.put("/whole.bin", big)
    upstream = "http://127.0.0.1:%d" % no_range.port
    with OriginProxy(upstream) as proxy:
        cli = PagemeshCLI(build_dir, str(tmp_path / "cache"),
                          dict(util.clean_env(tmp_path),
                               PAGEMESH_LOG_LEVEL="info"))
        r = cli.run("--page-size", "64K", "cat", proxy.url + "/whole.bin")
        assert r.returncode == 0, r.stderr
        assert r.stdout == big
        got = proxy.stats()["get_bytes"]
        print("%d bytes from the origin for %d" % (got, len(big)))
        assert got <= 3 * len(big), "%d bytes for %d" % (got, len(big))
        assert b"kept whole in a scratch file" in r.stderr, r.stderr
        assert b"ignores Range (HTTP 200" not in r.stderr
        # The scratch file is unlinked: nothing left in the cache dir.
        assert not [f for f in os.listdir(cli.cache_dir)
                    if f.startswith(".pm-whole")]
        # A new version is read anew, whole and right.
        changed = random.Random(6).randbytes(len(big))
        no_range.put("/whole.bin", changed)
        cli.run("invalidate", proxy.url + "/whole.bin", check=True)
        assert cli.cat(proxy.url + "/whole.bin") == changed


def test_a_whole_copy_slower_than_the_timeout_fails_no_read(no_range,
                                                            build_dir,
                                                            tmp_path):
    """The copy of a whole answer is cut by the request's timeout on a
    slow server (a request's timeout caps the whole transfer): the read,
    whose bytes had come, succeeds all the same, in one request (it
    failed after its retries, each downloading the object anew)."""
    from harness.pagemesh_cli import PagemeshCLI
    big = random.Random(7).randbytes(8 * 1024 * 1024)
    no_range.put("/slow.bin", big)
    upstream = "http://127.0.0.1:%d" % no_range.port
    with OriginProxy(upstream, bandwidth=2 * 1024 * 1024) as proxy:
        cli = PagemeshCLI(build_dir, str(tmp_path / "cache"),
                          dict(util.clean_env(tmp_path),
                               PAGEMESH_ORIGIN_TIMEOUT_MS="1500",
                               PAGEMESH_READAHEAD_PAGES="0"), timeout=60)
        url = proxy.url + "/slow.bin"
        for offset in (0, 65536, 131072):
            r = cli.run("--page-size", "64K", "cat", url, "--offset",
                        str(offset), "--length", "65536")
            assert r.returncode == 0, (offset, r.stderr)
            assert r.stdout == big[offset:offset + 65536]
        gets = proxy.stats()["requests"].get("GET", 0)
        assert gets == 3, proxy.stats()["requests"]


def test_empty_object(normal, no_range, driver):
    for web in (normal, no_range):
        assert driver.stat(web.url("/empty"))["size"] == 0
        assert driver.read(web.url("/empty"), 0, 10) == b""


def test_no_etag_uses_last_modified_and_size(driver):
    with origin(send_etag=False) as web:
        st = driver.stat(web.url("/data.bin"))
        mtime = web.objects["/data.bin"].mtime
        assert st["version"] == "lm:%d size:%d" % (mtime, len(DATA))
        assert driver.read(web.url("/data.bin"), 7, 70) == DATA[7:77]
        web.put("/data.bin", DATA)  # same bytes, newer Last-Modified
        res = driver.error("read", web.url("/data.bin"), 0, 10,
                           st["version"], st["size"])
        assert res.error == "PM_ECHANGED"


def test_neither_etag_nor_last_modified_falls_back_to_size(driver):
    with origin(send_etag=False, send_last_modified=False) as web:
        st = driver.stat(web.url("/data.bin"))
        assert st["version"] == "size:%d unversioned" % len(DATA)
        assert st["mtime_ns"] == 0
        assert driver.read(web.url("/data.bin"), 1, 10) == DATA[1:11]
        web.put("/data.bin", DATA[:-1])  # a size change is still seen
        res = driver.error("read", web.url("/data.bin"), 0, 10,
                           st["version"], st["size"])
        assert res.error == "PM_ECHANGED"


@pytest.mark.parametrize("honour_range", [True, False])
@pytest.mark.parametrize("refusal", [True, 403])
def test_head_refused_falls_back_to_ranged_get(driver, honour_range,
                                               refusal):
    # 403: a presigned URL answers HEAD so, being signed for GET only.
    with origin(refuse_head=refusal, honour_range=honour_range) as web:
        st = driver.stat(web.url("/data.bin"))
        assert st["size"] == len(DATA)
        assert st["version"] == web.objects["/data.bin"].etag.strip('"')
        assert web.counts == {"HEAD": 1, "GET": 1}
        assert driver.stat(web.url("/empty"))["size"] == 0
        assert driver.read(web.url("/data.bin"), 3, 30) == DATA[3:33]


def test_head_without_length_falls_back_to_ranged_get(driver):
    with origin(head_without_length=True) as web:
        assert driver.stat(web.url("/data.bin"))["size"] == len(DATA)


def test_changed_object_if_match_412(driver):
    with origin() as web:
        st = driver.stat(web.url("/data.bin"))
        web.put("/data.bin", DATA[::-1])
        res = driver.error("read", web.url("/data.bin"), 0, 10,
                           st["version"], st["size"])
        assert res.error == "PM_ECHANGED" and "412" in res.detail


def test_changed_object_when_server_ignores_if_match(driver):
    with origin(honour_if_match=False, honour_range=False) as web:
        st = driver.stat(web.url("/data.bin"))
        web.put("/data.bin", DATA[::-1])
        res = driver.error("read", web.url("/data.bin"), 0, 10,
                           st["version"], st["size"])
        assert res.error == "PM_ECHANGED"


def test_statuses_map_to_errors(normal, driver):
    assert driver.error("stat", normal.url("/missing")).error == "PM_ENOENT"
    normal.set_status("/secret", 403)
    normal.set_status("/auth", 401)
    res = driver.error("stat", normal.url("/secret"))
    assert res.error == "PM_EACCES" and "403" in res.detail
    assert driver.error("stat", normal.url("/auth")).error == "PM_EACCES"
    normal.set_status("/broken", 502)
    res = driver.with_env(PAGEMESH_ORIGIN_RETRIES=1).error(
        "stat", normal.url("/broken"))
    assert res.error == "PM_EORIGIN" and "2 attempts" in res.detail
    assert res.requests == 2


def test_listing_is_not_supported(normal, driver):
    res = driver.error("list", normal.url("/"))
    assert res.error == "PM_ENOTSUP"


def test_unreachable_and_bad_urls(driver):
    port = util.free_port()
    res = driver.error("stat", "http://127.0.0.1:%d/x" % port)
    assert res.error == "PM_EUNREACHABLE"
    assert driver.error("stat", "http:///x").error == "PM_EBADURI"
    assert driver.error("stat", "http://h/a b").error == "PM_EBADURI"


def test_retries_through_proxy(normal, driver):
    with OriginProxy("http://127.0.0.1:%d" % normal.port) as proxy:
        proxy.fail_next(3, status=503)
        url = proxy.url + "/data.bin"
        assert driver.read(url, 100, 1000) == DATA[100:1100]
        stats = proxy.stats()
        assert stats["faults"] == 3 and stats["total_requests"] == 5


def test_concurrent_reads(normal, driver):
    assert driver.run("hammer", normal.url("/data.bin"), 6, 30).check() \
        .stdout == b"ok\n"


def test_slow_origin_times_out(normal, driver):
    upstream = "http://127.0.0.1:%d" % normal.port
    with OriginProxy(upstream, ttfb_ms=5000) as proxy:
        slow = driver.with_env(PAGEMESH_ORIGIN_TIMEOUT_MS=200,
                               PAGEMESH_ORIGIN_RETRIES=1)
        started = time.monotonic()
        res = slow.error("stat", proxy.url + "/data.bin")
        assert res.error == "PM_ETIMEDOUT" and "2 attempts" in res.detail
        assert time.monotonic() - started < 3.0  # not the 5 s TTFB


def test_origin_timeout_and_retries_from_the_environment(normal, build_dir,
                                                          tmp_path):
    """PAGEMESH_ORIGIN_TIMEOUT_MS and PAGEMESH_ORIGIN_RETRIES set the
    library's origin timeout and retries (the README names them; nothing
    read them, and a stalled origin held a read 30 s per attempt, 5
    attempts)."""
    from harness.pagemesh_cli import PagemeshCLI
    upstream = "http://127.0.0.1:%d" % normal.port
    with OriginProxy(upstream, ttfb_ms=5000) as proxy:
        cli = PagemeshCLI(build_dir, str(tmp_path / "cache"),
                          dict(util.clean_env(tmp_path),
                               PAGEMESH_ORIGIN_TIMEOUT_MS="200",
                               PAGEMESH_ORIGIN_RETRIES="1"), timeout=20)
        started = time.monotonic()
        r = cli.run("stat", proxy.url + "/data.bin")
        assert r.returncode != 0
        assert b"2 attempts" in r.stderr, r.stderr
        assert time.monotonic() - started < 3.0


def test_origin_proxy_shaping_and_control(normal, driver):
    """The proxy the benchmark reuses: delay, bandwidth cap, control
    endpoints, and its command-line mode."""
    upstream = "http://127.0.0.1:%d" % normal.port
    with OriginProxy(upstream, ttfb_ms=150) as proxy:
        started = time.monotonic()
        driver.stat(proxy.url + "/data.bin")
        assert time.monotonic() - started >= 0.15
        proxy.configure(ttfb_ms=0, bandwidth=1024 * 1024)
        started = time.monotonic()
        assert driver.read(proxy.url + "/data.bin", 0, 512 * 1024) == \
            DATA[:512 * 1024]
        assert time.monotonic() - started >= 0.45
        with urllib.request.urlopen(proxy.url + "/__pm_stats") as answer:
            stats = json.load(answer)
        assert stats["requests"] == {"HEAD": 2, "GET": 1}
        assert stats["get_bytes"] == 512 * 1024
        urllib.request.urlopen(proxy.url + "/__pm_fault?count=1&status=500")
        urllib.request.urlopen(proxy.url + "/__pm_config?bandwidth=0")
        assert driver.with_env(PAGEMESH_ORIGIN_RETRIES=0).error(
            "stat", proxy.url + "/data.bin").error == "PM_EORIGIN"
        urllib.request.urlopen(proxy.url + "/__pm_reset")
        assert proxy.stats()["total_requests"] == 0
    cli = subprocess.Popen(
        [sys.executable, "-m", "origin_proxy", "--upstream", upstream],
        cwd=util.repo_root() + "/perf", stdout=subprocess.PIPE, text=True)
    try:
        url = json.loads(cli.stdout.readline())["url"]
        assert driver.read(url + "/data.bin", 9, 9) == DATA[9:18]
    finally:
        cli.terminate()
        assert cli.wait(timeout=10) == 0
