"""Small helpers shared by the test harness: free ports, waiting for a
server with a deadline (never a bare sleep), locating build outputs, and a
clean environment for programs under test."""

import os
import socket
import time


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
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
    a test directory (so no real ~/.aws files leak in), plus extra."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "PAGEMESH_"))}
    env["HOME"] = str(home)
    env.update({k: str(v) for k, v in extra.items() if v is not None})
    return env
