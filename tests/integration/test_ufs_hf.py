"""The Hugging Face origin (ufs/hf.c) against a stand-in for the Hub at
HF_ENDPOINT (harness.hfserver: resolve with redirects to a storage server
on another port, X-Linked-Etag, the tree API with Link pagination, 401 for
private repositories), driven through pm_ufs_driver and through the
`pagemesh` command. A counting proxy stands in front of the Hub."""

import hashlib
import random

import pytest

from harness.cloud_env import blank, clean_env
from harness.hfserver import HFServer, git_oid
from harness.keepalive_proxy import OriginProxy
from harness.pagemesh_cli import PagemeshCLI
from harness.ufs_driver import Driver

TOKEN = "hf_test_token_123"
MiB = 1024 * 1024
LFS = random.Random(21).randbytes(2 * MiB + 99)      # 3 pages, LFS
SMALL = b"a small text file, stored in git\n" * 10    # not LFS
TREE = ["data/train/%02d.parquet" % i for i in range(7)] + \
    ["data/test/00.parquet", "README.md"]


@pytest.fixture(scope="module")
def hub():
    with HFServer(token=TOKEN, page_size=4) as server:
        server.add("dataset", "org/data", "big.bin", LFS)
        server.add("dataset", "org/data", "notes/small.txt", SMALL)
        server.add("dataset", "org/data", "dir with space/a+b.txt", b"odd")
        for path in TREE:
            server.add("dataset", "org/data", path, path.encode() * 3)
        server.add("dataset", "org/data", "pr.txt", b"from a PR",
                   revision="refs/pr/1")
        server.add("dataset", "org/data", "v.txt", b"on a branch",
                   revision="feature/x")
        server.add("model", "org/model", "config.json", b'{"a": 1}')
        server.add("model", "org/private", "weights.bin", LFS[:50000],
                   private=True)
        server.add("space", "org/space", "app.py", b"print(1)")
        server.add("model", "org/new-name", "moved.txt", b"renamed repo")
        server.rename("model", "org/old-name", "org/new-name")
        yield server


@pytest.fixture(scope="module")
def proxy(hub):
    with OriginProxy(hub.endpoint) as p:
        yield p


@pytest.fixture
def driver(hub, proxy, tmp_path):
    hub.reset_counts()
    proxy.reset_stats()
    proxy.fail_next(0)
    return Driver(clean_env(tmp_path, HF_ENDPOINT=proxy.url))


def ds(path, rev=None):
    return "hf://datasets/org/data%s/%s" % ("@" + rev if rev else "", path)


def test_lfs_file_stat_uses_the_linked_etag_and_size(driver, hub):
    st = driver.stat(ds("big.bin"))
    assert st["size"] == len(LFS)
    assert st["version"] == hashlib.sha256(LFS).hexdigest()
    assert hub.counts == {"HEAD": 1} and hub.storage_counts == {}


def test_small_file_stat_uses_the_etag(driver):
    st = driver.stat(ds("notes/small.txt"))
    assert st["size"] == len(SMALL) and st["version"] == git_oid(SMALL)


@pytest.mark.parametrize("offset,length", [
    (0, 1), (5, 4096), (MiB - 3, 70000), (len(LFS) - 9, 100),
    (0, len(LFS))])
def test_lfs_reads_follow_the_redirect(driver, hub, offset, length):
    assert driver.read(ds("big.bin"), offset, length) == \
        LFS[offset:offset + length]
    assert hub.storage_counts == {"GET": 1}
    assert hub.auth_leaks == 0


def test_small_file_ranged_read(driver):
    assert driver.read(ds("notes/small.txt"), 2, 10) == SMALL[2:12]


def test_token_goes_to_the_hub_and_never_to_storage(driver, hub, proxy):
    with_token = driver.with_env(HF_TOKEN=TOKEN)
    assert with_token.read(ds("big.bin"), 0, 10) == LFS[:10]
    sent = [r["headers"].get("authorization") for r in
            proxy.stats()["recent"]]
    assert sent == ["Bearer " + TOKEN] * 2  # HEAD and the resolve GET
    assert hub.storage_counts == {"GET": 1} and hub.auth_leaks == 0


def test_private_repo_needs_the_token(driver):
    u = "hf://org/private/weights.bin"
    res = driver.error("stat", u)
    assert res.error == "PM_EACCES" and "401" in res.detail
    assert "RepoNotFound" in res.detail and "HF_TOKEN" in res.detail
    assert u in res.detail
    res = driver.with_env(HF_TOKEN="hf_wrong").error("stat", u)
    assert res.error == "PM_EACCES"
    ok = driver.with_env(HF_TOKEN=TOKEN)
    assert ok.read(u, 100, 50) == LFS[100:150]
    assert ok.list("hf://org/private")[0][0] == u


def test_token_file_like_huggingface_hub(driver, tmp_path):
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "token").write_text(TOKEN + "\n")
    assert driver.with_env(HF_HOME=str(tmp_path / "hf")).stat(
        "hf://org/private/weights.bin")["size"] == 50000


def test_missing_file_and_revision(driver):
    res = driver.error("stat", ds("nope.txt"))
    assert res.error == "PM_ENOENT" and "EntryNotFound" in res.detail
    res = driver.error("stat", ds("big.bin", rev="no-such-branch"))
    assert res.error == "PM_ENOENT" and "RevisionNotFound" in res.detail


def test_revisions_encoded_and_special(driver):
    assert driver.read(ds("pr.txt", rev="refs%2Fpr%2F1"), 0, 9) == \
        b"from a PR"
    assert driver.read(ds("pr.txt", rev="refs/pr/1"), 0, 9) == b"from a PR"
    assert driver.read(ds("v.txt", rev="feature%2Fx"), 0, 11) == \
        b"on a branch"
    listed = driver.list("hf://datasets/org/data@refs%2Fpr%2F1")
    assert [e[0] for e in listed] == [ds("pr.txt", rev="refs%2Fpr%2F1")]


def test_models_spaces_and_odd_paths(driver):
    assert driver.read("hf://org/model/config.json", 0, 8) == b'{"a": 1}'
    assert driver.read("hf://spaces/org/space/app.py", 0, 8) == b"print(1)"
    assert driver.read(ds("dir with space/a+b.txt"), 0, 3) == b"odd"


def test_renamed_repo_redirect_is_followed(driver):
    u = "hf://org/old-name/moved.txt"
    assert driver.stat(u)["size"] == len(b"renamed repo")
    assert driver.read(u, 0, 7) == b"renamed"


def test_listing_and_versions(driver, proxy):
    top = driver.list("hf://datasets/org/data")
    assert [(e[0], e[1]) for e in top] == [
        (ds("README.md"), False), (ds("big.bin"), False),
        (ds("data/"), True), (ds("dir with space/"), True),
        (ds("notes/"), True)]
    big = [e for e in top if e[0] == ds("big.bin")][0]
    assert big[2] == len(LFS) and big[3] == driver.stat(ds("big.bin"))[
        "version"]
    assert driver.list(ds("notes"))[0][3] == git_oid(SMALL)
    # A directory's tree oid is not an object version.
    assert [e[3] for e in top if e[1]] == [None, None, None]
    paths = [r["path"] for r in proxy.stats()["recent"]]
    assert any("cursor=" in p for p in paths)  # 5 entries, pages of 4


def test_recursive_listing_follows_pages(driver, proxy):
    proxy.reset_stats()
    res = driver.run("list", ds("data"), "-r").check()
    lines = res.stdout.decode().splitlines()
    assert [line.split("\t")[0] for line in lines] == sorted(
        ds(p) for p in TREE if p.startswith("data/"))
    assert res.requests == 3  # 8 files + 2 directories, pages of 4


def test_next_page_on_another_origin_is_refused(driver, hub):
    hub.link_base = "http://127.0.0.1:1"
    try:
        res = driver.with_env(HF_TOKEN=TOKEN).error("list", ds("data"), "-r")
    finally:
        hub.link_base = None
    assert res.error == "PM_EPROTO" and "another origin" in res.detail


def test_listing_a_file_lists_it_alone(driver):
    assert [e[0] for e in driver.list(ds("notes/small.txt"))] == \
        [ds("notes/small.txt")]
    assert driver.error("list", ds("nothing/")).error == "PM_ENOENT"


def test_bad_uris(driver):
    for bad in ("hf://", "hf://datasets/onlyorg", "hf://datasets/o/n@/x",
                "hf://o!/n/x"):
        assert driver.error("stat", bad).error == "PM_EBADURI", bad


def test_changed_file_between_stat_and_read(driver, hub):
    hub.add("dataset", "org/data", "moving.bin", b"1" * 20000)
    st = driver.stat(ds("moving.bin"))
    hub.add("dataset", "org/data", "moving.bin", b"2" * 20000)
    res = driver.error("read", ds("moving.bin"), 0, 10, st["version"],
                       st["size"])
    assert res.error == "PM_ECHANGED"
    assert driver.read(ds("moving.bin"), 0, 3) == b"222"


def test_retries_on_503(driver, proxy):
    proxy.fail_next(2, status=503)
    assert driver.read(ds("notes/small.txt"), 0, 5) == SMALL[:5]
    assert proxy.stats()["faults"] == 2


def test_concurrent_reads_share_connections(driver, proxy):
    assert driver.run("hammer", ds("big.bin"), 4, 15).check().stdout == \
        b"ok\n"
    stats = proxy.stats()
    assert stats["requests"]["GET"] == 1 + 4 * 15
    assert stats["connections"] <= 8


# ---- the pagemesh command -------------------------------------------------


@pytest.fixture
def cli(build_dir, tmp_path, proxy, hub):
    proxy.reset_stats()
    hub.reset_counts()
    return PagemeshCLI(build_dir, str(tmp_path / "cache"),
                       blank(HF_ENDPOINT=proxy.url, HF_TOKEN=TOKEN))


def test_cli_cat_twice_costs_one_set_of_origin_requests(cli, hub):
    assert cli.cat(ds("big.bin")) == LFS
    assert hub.counts == {"HEAD": 1, "GET": 3}
    assert hub.storage_counts == {"GET": 3}
    hub.reset_counts()
    assert cli.cat(ds("big.bin")) == LFS
    assert hub.counts == {} and hub.storage_counts == {}


def test_cli_stat_and_ls(cli):
    st = cli.json("stat", ds("big.bin"), "--json")
    assert st["size"] == len(LFS)
    assert st["version"] == hashlib.sha256(LFS).hexdigest()
    names = [e["uri"] for e in cli.json("ls", ds("data/"), "--json")]
    assert names == [ds("data/test/"), ds("data/train/")]
    deep = cli.json("ls", ds("data"), "--json", "-r")
    assert len(deep) == 8
    assert cli.cat("hf://org/private/weights.bin", "--length", "10") == \
        LFS[:10]
