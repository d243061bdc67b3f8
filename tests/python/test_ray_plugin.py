"""The Ray runtime_env plugin (pagemesh.ray.Plugin) on a local Ray
started with RAY_RUNTIME_ENV_PLUGINS in its environment: a task with
runtime_env={"pagemesh": {...}} gets PAGEMESH_CACHE_DIR and a node peer
(pagemeshd, started detached by the plugin, holding the S3 credentials
given in the runtime env), reads S3 through it without credentials of its
own; a second job reuses the same daemon; mesh options reach the daemon;
unknown options fail clearly."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import ray

from conftest import BUCKET
from harness.util import free_port
from pm_helpers import cli_status

PLUGINS = json.dumps([{"class": "pagemesh.ray.Plugin"}])
PAYLOAD = b"read by a Ray task through pagemeshd\n" * 1000


@pytest.fixture(scope="module")
def cluster(s3):
    """A local Ray whose runtime env agent loads the plugin."""
    s3.put_object(BUCKET, "plugin/payload.bin", PAYLOAD)
    os.environ["RAY_RUNTIME_ENV_PLUGINS"] = PLUGINS
    try:
        context = ray.init(num_cpus=2, include_dashboard=False,
                           log_to_driver=False, configure_logging=False)
        yield context
    finally:
        ray.shutdown()
        del os.environ["RAY_RUNTIME_ENV_PLUGINS"]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("plugin-cache"))
    yield path
    status = cli_status(path)
    if status:  # the daemon the plugin started: stop it by its pid
        os.kill(status["node_pid"], signal.SIGTERM)
        deadline = time.monotonic() + 10
        while cli_status(path) and time.monotonic() < deadline:
            time.sleep(0.05)


def runtime_env(s3, proxy, cache_dir, **extra):
    config = {"cache_dir": cache_dir, "disk_capacity": "1G",
              "ram_capacity": "64M", "env": s3.env(endpoint=proxy.url)}
    config.update(extra)
    return {"pagemesh": config}


@ray.remote
def read_through_pagemesh(key):
    """In a Ray worker: what the plugin set up, and a read through it with
    no credentials of our own (the node peer has them)."""
    import fsspec
    fs = fsspec.filesystem("pagemesh", target_protocol="s3")
    data = fs.cat_file(key)
    status = fs.peer.status()
    return {"cache_dir": os.environ.get("PAGEMESH_CACHE_DIR"),
            "pid": os.getpid(), "role": status["role"],
            "node_pid": status["node_pid"], "data": data}


def test_task_gets_a_node_peer(cluster, s3, proxy, cache_dir):
    assert cli_status(cache_dir) is None
    env = runtime_env(s3, proxy, cache_dir)
    got = ray.get(read_through_pagemesh.options(runtime_env=env).remote(
        "%s/plugin/payload.bin" % BUCKET), timeout=180)
    assert got["cache_dir"] == cache_dir
    assert got["data"] == PAYLOAD
    assert got["role"] == "attached"
    status = cli_status(cache_dir)
    assert status is not None, "no node peer after the task"
    assert status["node_pid"] == got["node_pid"] != os.getpid()
    with open("/proc/%d/comm" % status["node_pid"]) as f:
        assert f.read().strip() == "pagemeshd"
    assert os.getsid(status["node_pid"]) == status["node_pid"]  # setsid
    assert status["stats"]["disk_capacity"] == 1 << 30
    assert got["pid"] in status["attached"]


def test_second_job_reuses_the_daemon(cluster, s3, proxy, cache_dir):
    before = cli_status(cache_dir)
    assert before is not None
    proxy.reset_stats()
    # A second driver: a new job on the same cluster, with the runtime env
    # given at ray.init (other options: the running daemon keeps its own).
    env = runtime_env(s3, proxy, cache_dir, disk_capacity="2G")
    script = textwrap.dedent("""
        import json, os, sys, ray
        ray.init(address=sys.argv[1], runtime_env=json.loads(sys.argv[2]),
                 log_to_driver=False, configure_logging=False)

        @ray.remote
        def probe(key):
            import fsspec
            fs = fsspec.filesystem("pagemesh", target_protocol="s3")
            return [os.environ.get("PAGEMESH_CACHE_DIR"),
                    fs.peer.status()["node_pid"], len(fs.cat_file(key))]

        print(json.dumps(ray.get(probe.remote(sys.argv[3]), timeout=180)))
    """)
    result = subprocess.run(
        [sys.executable, "-c", script, cluster.address_info["gcs_address"],
         json.dumps(env), "%s/plugin/payload.bin" % BUCKET],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    seen_cache_dir, node_pid, length = json.loads(
        result.stdout.strip().splitlines()[-1])
    assert seen_cache_dir == cache_dir
    assert node_pid == before["node_pid"]
    assert length == len(PAYLOAD)
    after = cli_status(cache_dir)
    assert after["node_pid"] == before["node_pid"]
    assert after["stats"]["disk_capacity"] == 1 << 30  # the daemon's own
    assert proxy.stats()["total_requests"] == 0  # cached by the first job


def test_unknown_option_fails_the_job_clearly(cluster, cache_dir):
    bad = {"pagemesh": {"cache_dir": cache_dir, "disk_capcity": "1G"}}
    with pytest.raises(ray.exceptions.RuntimeEnvSetupError) as raised:
        ray.get(read_through_pagemesh.options(runtime_env=bad).remote("x"),
                timeout=180)
    assert "disk_capcity" in str(raised.value)


def test_mesh_options_reach_the_daemon(cluster, s3, proxy, tmp_path):
    """listen/cluster_key_file/cluster_id/replicas become pagemeshd flags:
    the daemon the plugin starts is a (one-member) mesh."""
    key = tmp_path / "cluster.key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)
    mesh_cache = str(tmp_path / "mesh-cache")
    listen = "127.0.0.1:%d" % free_port()
    env = runtime_env(s3, proxy, mesh_cache, listen=listen,
                      cluster_key_file=str(key), cluster_id="pm-ray-test",
                      replicas=1)
    try:
        got = ray.get(read_through_pagemesh.options(runtime_env=env).remote(
            "%s/plugin/payload.bin" % BUCKET), timeout=180)
        assert got["data"] == PAYLOAD and got["cache_dir"] == mesh_cache
        status = cli_status(mesh_cache)
        members = status["members"]
        assert [m["addr"] for m in members if m["self"]] == [listen]
    finally:
        status = cli_status(mesh_cache)
        if status:
            os.kill(status["node_pid"], signal.SIGTERM)
