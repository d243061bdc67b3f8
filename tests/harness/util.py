"""Small helpers shared by the test harness: free ports, waiting for a
server with a deadline (never a bare sleep), locating build outputs, and a
clean environment for programs under test."""

import os
import signal
import socket
import subprocess
import tempfile
import time


_handed_out = set()


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split()[:2])
            return low, high
    except (OSError, ValueError):
        return 32768, 60999


def _bindable(port):
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_port():
    """A port on 127.0.0.1 that was free for TCP and UDP a moment ago (a
    peer's gossip port is both), not handed out before by this process,
    and below the kernel's ephemeral range: the ports a bind to port 0 or
    an outgoing connection takes come from that range, so a daemon started
    earlier cannot take a port reserved for one started later."""
    import random
    eph_low, eph_high = _ephemeral_range()
    # Below the ephemeral range, else above it, else anywhere free.
    low, high = (10000 if eph_low > 12000 else 1024), eph_low - 1
    if high - low < 1000:
        low, high = eph_high + 1, 65535
    for _ in range(1000 if high - low >= 1000 else 0):
        port = random.randint(low, high)
        if port not in _handed_out and _bindable(port):
            _handed_out.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(host, port, timeout, alive=lambda: True):
    """Poll until host:port accepts connections; raise on timeout or if
    alive() turns false (the server died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError("server on port %d exited during start" % port)
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("nothing listens on %s:%d after %.0fs"
                       % (host, port, timeout))


def repo_root():
    return os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))


def build_dir():
    """$PAGEMESH_BUILD_DIR, else <repo>/build."""
    return os.environ.get("PAGEMESH_BUILD_DIR") or os.path.join(
        repo_root(), "build")


def find_program(name):
    """A program built by CMake (build/ or build/tests/)."""
    for sub in ("", "tests", "bin"):
        path = os.path.join(build_dir(), sub, name)
        if os.access(path, os.X_OK):
            return path
    raise FileNotFoundError("%s not built under %s" % (name, build_dir()))


def clean_env(home, **extra):
    """os.environ without AWS_* and PAGEMESH_* variables, with HOME set to
    a test directory (so no real ~/.aws files leak in), plus extra. The EC2
    metadata service is off unless extra turns it on: a test machine that
    is an EC2 instance would otherwise be asked for its role (so would
    GCE's and Azure's metadata services, for a service account or a
    managed identity)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "PAGEMESH_"))}
    env["HOME"] = str(home)
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    env["NO_GCE_CHECK"] = "true"
    env["PAGEMESH_AZURE_MANAGED_IDENTITY"] = "off"
    env.update({k: str(v) for k, v in extra.items() if v is not None})
    return env


class ServerProcess:
    """A server program on 127.0.0.1:self.port in its own process group,
    its output kept in a temporary file (log()); stop() ends the group.
    A context manager: `with Server() as s:` starts and stops it."""

    proc = None
    port = None
    _log = None

    def _spawn(self, argv, log_prefix, timeout, env=None):
        """Start argv and wait until it listens on self.port (stopped
        again if it does not)."""
        self._log = tempfile.TemporaryFile(prefix=log_prefix)
        self.proc = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for_port("127.0.0.1", self.port, timeout,
                          alive=lambda: self.proc.poll() is None)
        except BaseException:
            self.stop()
            raise

    def log(self):
        """What the server printed so far (for failure messages)."""
        if not self._log:
            return ""
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None
        if self._log:
            self._log.close()
            self._log = None

    def __enter__(self):
        return self.start() if self.proc is None else self

    def __exit__(self, *exc):
        self.stop()
