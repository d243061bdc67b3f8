"""The installed package (what `pip install ./bindings/python` gave this
Python): the C library and programs bundled into it, the fsspec entry
point; and pagemesh.daemon starting or reusing pagemeshd."""

import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from pm_helpers import cli_status

PROBE = """
import json, fsspec, pagemesh, pagemesh.daemon as d
print(json.dumps({
    "module": pagemesh.__file__,
    "library": pagemesh.library_path(),
    "version": pagemesh.library_version(),
    "fs": fsspec.get_filesystem_class("pagemesh").__module__,
    "pagemeshd": d.find_program("pagemeshd"),
}))
"""


def clean_env():
    """Our environment without what conftest points at the source tree."""
    return {k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "PAGEMESH_LIBRARY",
                         "PAGEMESH_PAGEMESHD", "PAGEMESH_PAGEMESH")}


def test_installed_package_bundles_library_and_daemon():
    result = subprocess.run([sys.executable, "-c", PROBE], cwd="/",
                            env=clean_env(), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    package_dir = os.path.dirname(found["module"])
    assert "site-packages" in package_dir
    assert found["library"] == os.path.join(package_dir, "_native",
                                            "libpagemesh.so.0")
    assert found["version"] == "0.1.0"
    assert found["fs"] == "pagemesh.fs"
    assert found["pagemeshd"] == os.path.join(package_dir, "_native", "bin",
                                              "pagemeshd")
    # The bundled daemon runs from there (the library found beside it).
    from pagemesh import daemon
    env = clean_env()
    env["LD_LIBRARY_PATH"] = os.path.dirname(found["library"])
    helped = subprocess.run([found["pagemeshd"], "--help"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "--cache-dir" in helped.stdout
    assert daemon.DAEMON_FLAGS["disk_capacity"] in helped.stdout


def test_ensure_node_starts_once_and_reuses(tmp_path):
    from pagemesh import daemon
    cache_dir = str(tmp_path / "cache")
    options = {"disk_capacity": "512M", "page_size": "64K"}
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        statuses = list(pool.map(
            lambda _: daemon.ensure_node(cache_dir, options), range(3)))
    try:
        assert len({s["node_pid"] for s in statuses}) == 1
        assert sum(s["started"] for s in statuses) == 1
        assert statuses[0]["page_size"] == 65536
        again = daemon.ensure_node(cache_dir, options)
        assert again["node_pid"] == statuses[0]["node_pid"]
        assert not again["started"]
        assert cli_status(cache_dir)["node_pid"] == again["node_pid"]
        assert os.path.exists(os.path.join(cache_dir, "pagemeshd.log"))
    finally:
        os.kill(statuses[0]["node_pid"], signal.SIGTERM)
    deadline = time.monotonic() + 10
    while daemon.node_status(cache_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert daemon.node_status(cache_dir) is None
    # No spare daemon of the race lingers to take the directory over. (The
    # node stops answering first, then leaves the mesh and exits: give the
    # exit a moment.)
    while daemons_on(cache_dir) and time.monotonic() < deadline + 10:
        time.sleep(0.05)
    assert daemons_on(cache_dir) == []


def daemons_on(cache_dir):
    """pids of processes whose command line names cache_dir."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if os.fsencode(cache_dir) in argv and int(pid) != os.getpid():
            found.append(int(pid))
    return found


def test_plugin_validation():
    from pagemesh.ray import Plugin, validate_config
    validate_config({"cache_dir": "/x", "disk_capacity": "20G",
                     "env": {"AWS_REGION": "eu-west-1"}})
    Plugin.validate({"pagemesh": {"ram_capacity": 1 << 30}})
    with pytest.raises(ValueError, match="disk_capcity"):
        validate_config({"disk_capcity": "20G"})
    with pytest.raises(ValueError, match="not a size"):
        validate_config({"disk_capacity": "lots"})
    with pytest.raises(TypeError):
        validate_config({"env": {"AWS_REGION": 3}})
    from pagemesh import daemon
    pagemeshd = daemon.find_program("pagemeshd")
    assert daemon.supports_flag(pagemeshd, "--seeds")
    assert not daemon.supports_flag(pagemeshd, "--no-such-flag")
    assert daemon.daemon_args(
        {"disk_capacity": "20G", "seeds": ["10.0.0.1:7946", "10.0.0.2:7946"],
         "insecure_data": True, "replicas": 3, "env": {"X": "1"}},
        pagemeshd) == ["--disk-capacity", "20G",
                       "--seeds", "10.0.0.1:7946,10.0.0.2:7946",
                       "--insecure-data", "--replicas", "3"]
    validate_config({"listen": "10.0.0.5:7946", "seeds": "10.0.0.1:7946",
                     "cluster_key_file": "/etc/pagemesh/cluster.key"})
    # What pagemeshd would refuse is refused here, with the option named
    # (the job saw only the tail of pagemeshd's usage text before).
    for bad, word in (({"eviction": "bogus"}, "eviction"),
                      ({"disk_capacity": "1 G"}, "not a size"),
                      ({"ram_capacity": "8G "}, "not a size"),
                      ({"meta_ttl_ms": -5}, "meta_ttl_ms"),
                      ({"io_threads": "8"}, "io_threads"),
                      ({"start_timeout_s": 0}, "start_timeout_s"),
                      ({"insecure_data": "maybe"}, "insecure_data")):
        with pytest.raises(ValueError, match=word):
            validate_config(bad)
    validate_config({"eviction": "lru", "meta_ttl_ms": 0,
                     "insecure_data": "false", "disk_capacity": "8GiB"})
    # "false" is false: the flag is not passed (it was: a non-empty string)
    assert daemon.daemon_args({"insecure_data": "false"}, pagemeshd) == []
    assert daemon.daemon_args({"insecure_data": "yes"}, pagemeshd) == [
        "--insecure-data"]
    r = subprocess.run([pagemeshd, "--eviction", "bogus"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert r.stderr.splitlines()[0].startswith("--eviction: 'bogus'"), \
        r.stderr
    assert len(r.stderr.splitlines()) == 2, r.stderr
