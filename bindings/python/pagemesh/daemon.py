"""Finding, checking and starting ``pagemeshd``, the node peer as a daemon.

    status = pagemesh.daemon.ensure_node("/mnt/nvme/pagemesh",
                                         {"disk_capacity": "20G"},
                                         env={"AWS_REGION": "eu-west-1"})

:func:`ensure_node` reuses the node peer running on a cache directory, or
starts ``pagemeshd`` detached (its own session, stdin closed, output to
``<cache_dir>/pagemeshd.log``) and waits until it answers. Two callers
racing on one directory end up with the same node peer: ``pagemeshd``
exits with code 3 when another one holds the directory.

The daemon reads origin credentials (``AWS_*``) from its environment when
it starts: pass them in `env`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from typing import Any, Dict, List, Mapping, Optional

from . import _lib
from .peer import Peer, parse_bool, parse_size

EXIT_NODE_RUNNING = 3

# runtime options -> pagemeshd flags (all in `pagemeshd --help` today)
DAEMON_FLAGS = {
    "disk_capacity": "--disk-capacity",
    "ram_capacity": "--ram-capacity",
    "page_size": "--page-size",
    "eviction": "--eviction",
    "meta_ttl_ms": "--meta-ttl",
    "config": "--config",
    "log_file": "--log-file",
    "log_level": "--log-level",
}
# Mesh options: passed on only to a pagemeshd whose --help lists the flag
# (an older one runs single-node and must not silently drop them).
MESH_FLAGS = {
    "listen": "--listen",
    "seeds": "--seeds",
    "cluster_key_file": "--cluster-key-file",
    "cluster_id": "--cluster-id",
    "transport": "--transport",
    "transport_listen": "--transport-listen",
    "zone": "--zone",
    "replicas": "--replicas",
    "request_timeout_ms": "--request-timeout",
    "insecure_data": "--insecure-data",
}
BOOLEAN_FLAGS = ("insecure_data",)
# options that pagemeshd takes from PAGEMESH_* variables only
DAEMON_ENV = {
    "readahead_pages": "PAGEMESH_READAHEAD_PAGES",
    "io_threads": "PAGEMESH_IO_THREADS",
}
SIZE_OPTIONS = ("disk_capacity", "ram_capacity", "page_size")


def default_cache_dir() -> str:
    """The cache directory libpagemesh picks when none is given."""
    explicit = os.environ.get("PAGEMESH_CACHE_DIR")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pagemesh")


def find_program(name: str, explicit: Optional[str] = None) -> str:
    """Path of a pagemesh program ("pagemeshd", "pagemesh"): `explicit`,
    else $PAGEMESH_<NAME>, else the copy bundled with this package, else
    the PATH."""
    candidates = [explicit, os.environ.get("PAGEMESH_" + name.upper()),
                  os.path.join(_lib.NATIVE_DIR, "bin", name),
                  shutil.which(name)]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path
    raise FileNotFoundError(
        "%s not found: install pagemesh (cmake --install) or set "
        "PAGEMESH_%s" % (name, name.upper()))


def program_env(program: str,
                extra: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """Environment for running `program`: ours plus `extra`, and the
    bundled library directory first on the search path for a bundled
    program."""
    env = dict(os.environ)
    env.update(extra or {})
    if os.path.dirname(os.path.dirname(program)) == _lib.NATIVE_DIR:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            [_lib.NATIVE_DIR] + [p for p in [env.get("LD_LIBRARY_PATH")]
                                 if p])
    return env


_help_cache: Dict[str, str] = {}


def daemon_help(pagemeshd: str) -> str:
    """`pagemeshd --help` (cached per program)."""
    if pagemeshd not in _help_cache:
        result = subprocess.run([pagemeshd, "--help"], capture_output=True,
                                text=True, env=program_env(pagemeshd),
                                timeout=30)
        _help_cache[pagemeshd] = result.stdout + result.stderr
    return _help_cache[pagemeshd]


def supports_flag(pagemeshd: str, flag: str) -> bool:
    return (" %s " % flag) in daemon_help(pagemeshd).replace("\n", " ")


def daemon_args(options: Mapping[str, Any], pagemeshd: str) -> List[str]:
    """pagemeshd flags for `options` (raises ValueError for a mesh option
    this pagemeshd does not support yet)."""
    args: List[str] = []
    for key, value in options.items():
        if value is None:
            continue
        flag = DAEMON_FLAGS.get(key) or MESH_FLAGS.get(key)
        if flag is None:
            continue
        if key in MESH_FLAGS and not supports_flag(pagemeshd, flag):
            raise ValueError(
                "pagemesh: option %r needs a pagemeshd with %s; %s does not "
                "support the mesh yet" % (key, flag, pagemeshd))
        if key in BOOLEAN_FLAGS:
            args += [flag] if parse_bool(key, value) else []
            continue
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        args += [flag, str(value)]
    return args


def node_status(cache_dir: str) -> Optional[Dict[str, Any]]:
    """The status of the node peer running on `cache_dir`, or None if no
    node peer runs there (an attach-only peer asks it, and lets go)."""
    try:
        with Peer(cache_dir=cache_dir, attach_only=True) as peer:
            return peer.status()
    except OSError:
        return None


def _log_tail(path: str, lines: int = 20) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def start_node(cache_dir: str, options: Optional[Mapping[str, Any]] = None,
               env: Optional[Mapping[str, str]] = None,
               pagemeshd: Optional[str] = None) -> subprocess.Popen:
    """Start pagemeshd on `cache_dir`, detached (setsid); does not wait.
    The caller reaps the returned process (see :func:`ensure_node`)."""
    options = dict(options or {})
    program = find_program("pagemeshd", pagemeshd)
    os.makedirs(cache_dir, exist_ok=True)
    log_file = options.setdefault("log_file",
                                  os.path.join(cache_dir, "pagemeshd.log"))
    extra = dict(env or {})
    for key, name in DAEMON_ENV.items():
        if options.get(key) is not None:
            extra[name] = str(options[key])
    argv = [program, "--cache-dir", cache_dir] + daemon_args(options,
                                                            program)
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(argv, env=program_env(program, extra),
                                stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=log,
                                start_new_session=True, close_fds=True)
    return proc


def _reap_later(proc: subprocess.Popen) -> None:
    """Wait for `proc` in the background, so that it never lingers as a
    zombie of a long-lived caller (a Ray agent) when it exits."""
    if proc.poll() is None:
        threading.Thread(target=proc.wait, name="pagemeshd-reaper",
                         daemon=True).start()


def _settle_loser(proc: subprocess.Popen, cache_dir: str,
                  status: Dict[str, Any]) -> Dict[str, Any]:
    """Another node peer answered before ours took the directory: ours
    exits with code 3 once it finds the lock held. Wait for that, so that
    no spare daemon lingers to take over later; stop it if it does not."""
    try:
        proc.wait(timeout=10)
        return status
    except subprocess.TimeoutExpired:
        pass
    now = node_status(cache_dir)
    if now is not None and now.get("node_pid") == proc.pid:
        return now  # the other one went away and ours took over
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return now or status


def ensure_node(cache_dir: str, options: Optional[Mapping[str, Any]] = None,
                env: Optional[Mapping[str, str]] = None,
                pagemeshd: Optional[str] = None,
                timeout: float = 30.0) -> Dict[str, Any]:
    """Make sure a node peer runs on `cache_dir`: reuse the running one, or
    start pagemeshd. Returns its status, with "started" True if this call
    started it."""
    cache_dir = os.path.abspath(os.path.expanduser(cache_dir))
    status = node_status(cache_dir)
    if status is not None:
        return dict(status, started=False)
    for key in SIZE_OPTIONS:
        if (options or {}).get(key) is not None:
            parse_size(options[key])  # type: ignore[index]
    proc = start_node(cache_dir, options, env, pagemeshd)
    log_file = (options or {}).get("log_file") or os.path.join(
        cache_dir, "pagemeshd.log")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = node_status(cache_dir)
        if status is not None and status.get("node_pid") != proc.pid:
            status = _settle_loser(proc, cache_dir, status)
        if status is not None:
            _reap_later(proc)
            return dict(status, started=status.get("node_pid") == proc.pid)
        code = proc.poll()
        if code is not None and code != EXIT_NODE_RUNNING:
            raise RuntimeError("pagemeshd on %s exited with code %d:\n%s"
                               % (cache_dir, code, _log_tail(log_file)))
        time.sleep(0.05)
    _reap_later(proc)
    raise TimeoutError("pagemeshd on %s did not answer within %.0f s:\n%s"
                       % (cache_dir, timeout, _log_tail(log_file)))
