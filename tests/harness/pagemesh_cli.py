"""Running the pagemesh command-line tools as real processes in tests.

    cli = PagemeshCLI(build_dir, cache_dir, env)
    data = cli.cat("s3://bucket/key")            # bytes, raises on failure
    result = cli.run("stat", uri, "--json")     # a CompletedProcess
    stats = cli.json("stats", "--json")
    daemon = cli.start_daemon()                  # a Popen of pagemeshd
"""

import json
import os
import signal
import subprocess
import tempfile
import time


class CLIError(Exception):
    def __init__(self, args, result):
        super().__init__("%s failed (%d): %s" % (
            " ".join(args), result.returncode,
            result.stderr.decode(errors="replace").strip()))
        self.result = result


class PagemeshCLI:
    def __init__(self, build_dir, cache_dir, env=None, timeout=120):
        self.build_dir = build_dir
        self.cache_dir = cache_dir
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.env.setdefault("PAGEMESH_LOG_LEVEL", "warn")
        self.timeout = timeout

    @property
    def pagemesh(self):
        return os.path.join(self.build_dir, "pagemesh")

    @property
    def pagemeshd(self):
        return os.path.join(self.build_dir, "pagemeshd")

    def tool(self, name):
        return os.path.join(self.build_dir, "tests", name)

    def command(self, *args):
        return [self.pagemesh, "--cache-dir", self.cache_dir] + list(args)

    def run(self, *args, env=None, check=False):
        full_env = dict(self.env)
        full_env.update(env or {})
        result = subprocess.run(self.command(*args), capture_output=True,
                                env=full_env, timeout=self.timeout)
        if check and result.returncode != 0:
            raise CLIError(self.command(*args), result)
        return result

    def cat(self, *args, env=None):
        return self.run("cat", *args, env=env, check=True).stdout

    def json(self, *args, env=None):
        return json.loads(self.run(*args, env=env, check=True).stdout)

    def popen(self, argv, env=None, **kwargs):
        full_env = dict(self.env)
        full_env.update(env or {})
        return subprocess.Popen(argv, env=full_env, **kwargs)

    def start_daemon(self, *args, env=None, log=None):
        """Start pagemeshd on the cache directory and wait until it
        answers `pagemesh status`."""
        # Without a log of the caller's, stderr goes to a file kept for the
        # message of a daemon that exits before it answers.
        err = log or tempfile.TemporaryFile()
        proc = self.popen([self.pagemeshd, "--cache-dir", self.cache_dir]
                          + list(args), env=env,
                          stdout=subprocess.DEVNULL, stderr=err)
        try:
            self.wait_for_node(lambda: proc.poll() is None)
        except RuntimeError as e:
            if log is None:
                err.seek(0)
                raise RuntimeError("%s (exit %s): %s" % (
                    e, proc.returncode,
                    err.read()[-2000:].decode(errors="replace"))) from e
            raise
        finally:
            if log is None:
                err.close()
        return proc

    def node_status(self):
        result = self.run("status", "--json")
        if result.returncode != 0:
            return None
        return json.loads(result.stdout)

    def wait_for_node(self, alive=lambda: True, timeout=10.0, not_pid=None):
        """Poll until a node peer answers (other than not_pid); returns its
        status."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if not alive():
                raise RuntimeError("the daemon exited")
            last = self.run("status", "--json")
            status = json.loads(last.stdout) if last.returncode == 0 \
                else None
            if status and status.get("node_pid") != not_pid:
                return status
            time.sleep(0.02)
        raise TimeoutError("no node peer on %s; last status: %s" % (
            self.cache_dir, (last.stdout + last.stderr)[-1000:].decode(
                errors="replace") if last else "none"))


def stop(proc, sig=signal.SIGTERM, timeout=10):
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
