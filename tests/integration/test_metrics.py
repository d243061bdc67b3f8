"""pagemeshd's Prometheus endpoint (--metrics-listen), scraped over HTTP
and parsed with the reference exposition parser of the Prometheus Python
client (prometheus_client.parser), against what the test did: objects read
through the daemon from a real S3-compatible server behind a counting
proxy, a second read served from the cache, origin failures, and a mesh of
two daemons in which one leaves."""

import random
import subprocess
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.mesh import Mesh
from harness.pagemesh_cli import PagemeshCLI, stop
from harness.util import free_port

BUCKET = "pm-metrics"
KiB = 1024
PAGE = 256 * KiB
OBJECTS = {"data/shard-%d.bin" % i: random.Random(i).randbytes(
    3 * PAGE + 1000 * i) for i in range(3)}
PAGES = sum((len(v) + PAGE - 1) // PAGE for v in OBJECTS.values())
SIZE = sum(len(v) for v in OBJECTS.values())


def uri(key):
    return "s3://%s/%s" % (BUCKET, key)


def scrape(port, path="/metrics"):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path),
                                timeout=10) as answer:
        return answer.headers.get("Content-Type"), answer.read().decode()


class Scrape:
    """One scrape, parsed: families by name, and samples by (name,
    labels)."""

    def __init__(self, text):
        self.families = {f.name: f for f in
                         text_string_to_metric_families(text)}
        self.samples = {}
        for family in self.families.values():
            for s in family.samples:
                key = (s.name, tuple(sorted(s.labels.items())))
                self.samples[key] = s.value

    def value(self, name, **labels):
        return self.samples[(name, tuple(sorted(labels.items())))]

    def histogram(self, name):
        family = self.families[name]
        assert family.type == "histogram"
        buckets = [(s.labels["le"], s.value) for s in family.samples
                   if s.name == name + "_bucket"]
        return (buckets, self.value(name + "_count"),
                self.value(name + "_sum"))


def start_daemon(cli, port, *extra):
    return cli.start_daemon("--metrics-listen", "127.0.0.1:%d" % port,
                            "--page-size", str(PAGE), *extra)


def check_histogram(scraped, name):
    buckets, count, total = scraped.histogram(name)
    bounds = [float(le) for le, _ in buckets]
    counts = [c for _, c in buckets]
    assert bounds == sorted(bounds) and bounds[-1] == float("inf")
    assert counts == sorted(counts), "buckets must be cumulative"
    assert counts[-1] == count
    assert (count == 0) == (total == 0)
    return count, total


def run_daemon_once(cli, *args):
    """Run pagemeshd expecting it to exit at start."""
    return subprocess.run([cli.pagemeshd, "--cache-dir", cli.cache_dir]
                          + list(args), env=cli.env, capture_output=True,
                          timeout=30)


def test_metrics_after_reads(build_dir, tmp_path, s3, proxy):
    cli = PagemeshCLI(build_dir, str(tmp_path / "cache"),
                      s3.env(endpoint=proxy.url))
    port = free_port()
    daemon = start_daemon(cli, port)
    try:
        content_type, text = scrape(port)
        assert content_type.startswith("text/plain; version=0.0.4")
        before = Scrape(text)
        assert before.value("pagemesh_reads_total") == 0
        assert before.value("pagemesh_info", version="0.1.0",
                            role="node") == 1

        for key in sorted(OBJECTS):                 # cold: from the origin
            assert cli.cat(uri(key)) == OBJECTS[key]
        origin_calls = sum(proxy.stats()["requests"].values())
        for key in sorted(OBJECTS):                 # warm: from the cache
            assert cli.cat(uri(key)) == OBJECTS[key]
        assert sum(proxy.stats()["requests"].values()) == origin_calls

        status = cli.node_status()
        after = Scrape(scrape(port)[1])
        stats = status["stats"]
        # Every family is documented and typed.
        for family in after.families.values():
            assert family.documentation and family.type != "unknown", \
                family.name
        # Each page came from the origin once (the core may count a page
        # that a read and its readahead both missed twice as a miss).
        assert proxy.stats()["requests"].get("GET") == PAGES
        assert after.value("pagemesh_misses_total") == stats["misses"]
        assert after.value("pagemesh_misses_total") >= PAGES
        assert after.value("pagemesh_origin_bytes_total") == SIZE
        assert after.value("pagemesh_origin_requests_total") == origin_calls
        hits = (after.value("pagemesh_hits_total", tier="ram") +
                after.value("pagemesh_hits_total", tier="disk"))
        assert hits >= PAGES                        # the warm pass
        assert after.value("pagemesh_read_bytes_total") == 2 * SIZE
        assert after.value("pagemesh_reads_total") == stats["reads"] > 0
        assert after.value("pagemesh_cache_pages", tier="disk") == PAGES
        assert after.value("pagemesh_cache_used_bytes", tier="disk") == SIZE
        assert after.value("pagemesh_errors_total", kind="origin") == 0
        assert after.value("pagemesh_errors_total", kind="corrupt_page") == 0
        for state in ("alive", "suspect", "dead", "left"):  # not in a mesh
            assert after.value("pagemesh_members", state=state) == 0

        # One latency sample per read call of the (attached) readers, and
        # one per origin call (HEAD or GET) the proxy saw.
        reads, read_seconds = check_histogram(
            after, "pagemesh_read_latency_seconds")
        assert reads == stats["reads"] and read_seconds > 0
        origin, origin_seconds = check_histogram(
            after, "pagemesh_origin_latency_seconds")
        assert origin == origin_calls and origin_seconds > 0

        # Origin failures are counted by kind; a missing object is not one.
        assert cli.run("cat", uri("data/missing.bin")).returncode != 0
        proxy.fail_next(50, status=500)
        assert cli.run("cat", uri("data/never-read.bin")).returncode != 0
        errors = Scrape(scrape(port)[1])
        assert errors.value("pagemesh_errors_total", kind="origin") >= 1
    finally:
        stop(daemon)


def test_http_paths_and_bad_address(build_dir, tmp_path):
    cli = PagemeshCLI(build_dir, str(tmp_path / "cache"))
    port = free_port()
    daemon = start_daemon(cli, port)
    try:
        with pytest.raises(urllib.error.HTTPError) as missing:
            scrape(port, "/nothing")
        assert missing.value.code == 404
        # A second daemon cannot take the port: it says so and exits.
        other = PagemeshCLI(build_dir, str(tmp_path / "other"))
        result = run_daemon_once(other, "--metrics-listen",
                                 "127.0.0.1:%d" % port)
        assert result.returncode == 1
        assert b"metrics" in result.stderr
        result = run_daemon_once(other, "--metrics-listen", "localhost:9")
        assert result.returncode == 1 and b"IP:PORT" in result.stderr
    finally:
        stop(daemon)


def test_config_and_environment(build_dir, tmp_path):
    """metrics-listen from the INI file and from PAGEMESH_METRICS_LISTEN
    (the environment wins over the file)."""
    file_port, env_port = free_port(), free_port()
    config = tmp_path / "pagemesh.ini"
    config.write_text("[pagemesh]\nmetrics-listen = 127.0.0.1:%d\n"
                      % file_port)
    cli = PagemeshCLI(build_dir, str(tmp_path / "cache"))
    daemon = cli.start_daemon("--config", str(config))
    try:
        assert "pagemesh_reads_total" in scrape(file_port)[1]
    finally:
        stop(daemon)
    daemon = cli.start_daemon("--config", str(config), env={
        "PAGEMESH_METRICS_LISTEN": "127.0.0.1:%d" % env_port})
    try:
        assert "pagemesh_reads_total" in scrape(env_port)[1]
    finally:
        stop(daemon)


def test_mesh_members_and_peer_bytes(build_dir, tmp_path, s3, proxy):
    ports = [free_port(), free_port()]
    mesh = Mesh(build_dir, tmp_path, count=2, env=s3.env(endpoint=proxy.url),
                extra_args=["--page-size", str(PAGE), "--replicas", "1"])
    try:
        for i in range(2):
            mesh.start(i, extra=["--metrics-listen",
                                 "127.0.0.1:%d" % ports[i]])
        mesh.wait_members(2)
        first = Scrape(scrape(ports[0])[1])
        assert first.value("pagemesh_members", state="alive") == 2
        # Read everything through peer 0: with one replica per page, the
        # pages peer 1 owns cross the mesh.
        for key in sorted(OBJECTS):
            assert mesh.cli(0).cat(uri(key)) == OBJECTS[key]
        got = Scrape(scrape(ports[0])[1])
        sent = Scrape(scrape(ports[1])[1])
        received = got.value("pagemesh_peer_pages_total",
                             direction="received")
        assert received > 0
        # Peer 1 also answered requests that peer 0 did not count as a page
        # received (readahead that lost a race): sent >= received.
        assert sent.value("pagemesh_peer_pages_total",
                          direction="sent") >= received
        assert got.value("pagemesh_peer_bytes_total",
                         direction="received") > 0
        assert sent.value("pagemesh_peer_bytes_total", direction="sent") > 0
        origin = (got.value("pagemesh_origin_bytes_total") +
                  sent.value("pagemesh_origin_bytes_total"))
        assert origin == SIZE                   # each page fetched once
        # Peer 1 leaves: peer 0 counts it as left.
        stop(mesh.procs[1])
        mesh.procs[1] = None
        mesh.wait(lambda: Scrape(scrape(ports[0])[1]).value(
            "pagemesh_members", state="left") == 1, 15, "peer 1 left")
        final = Scrape(scrape(ports[0])[1])
        assert final.value("pagemesh_members", state="alive") == 1
    finally:
        mesh.stop_all()

