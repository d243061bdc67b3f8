"""Running pm_ufs_driver (tests/ufs/ufs_driver.c) from tests and reading
its answers: the origin connectors exercised exactly as the core calls
them, in a fresh process with a controlled environment."""

import re
import subprocess

from . import util

_ERROR = re.compile(r"^ERROR (PM_[A-Z]+): (.*)$", re.M)
_COUNT = re.compile(r"^origin requests=(\d+) bytes=(\d+)$", re.M)


class DriverError(Exception):
    def __init__(self, name, detail, stderr):
        super().__init__("%s: %s" % (name, detail))
        self.name = name
        self.detail = detail
        self.stderr = stderr


class Result:
    def __init__(self, proc):
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr.decode("utf-8", "replace")
        m = _ERROR.search(self.stderr)
        self.error = m.group(1) if m else None
        self.detail = m.group(2) if m else None
        m = _COUNT.search(self.stderr)
        self.requests = int(m.group(1)) if m else None
        self.bytes = int(m.group(2)) if m else None

    def check(self):
        """Raise DriverError unless the run succeeded."""
        if self.returncode != 0:
            raise DriverError(self.error, self.detail, self.stderr)
        return self


class Driver:
    """pm_ufs_driver with a fixed environment (see util.clean_env)."""

    def __init__(self, env, timeout=60):
        self.program = util.find_program("pm_ufs_driver")
        self.env = env
        self.timeout = timeout

    def with_env(self, **changes):
        """A driver whose environment differs by `changes` (None removes)."""
        env = dict(self.env)
        for name, value in changes.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = str(value)
        return Driver(env, self.timeout)

    def run(self, *args):
        proc = subprocess.run([self.program] + [str(a) for a in args],
                              env=self.env, capture_output=True,
                              timeout=self.timeout)
        return Result(proc)

    def stat(self, uri):
        """{"size": int, "mtime_ns": int, "version": str}."""
        out = self.run("stat", uri).check().stdout.decode()
        fields = dict(line.split(" ", 1) for line in out.splitlines())
        return {"size": int(fields["size"]),
                "mtime_ns": int(fields["mtime_ns"]),
                "version": fields["version"]}

    def read(self, uri, offset, length, version=None, size=None):
        args = ["read", uri, offset, length]
        if version is not None:
            args += [version, size]
        return self.run(*args).check().stdout

    def list(self, uri, recursive=False):
        """[(uri, is_dir, size, version or None)] sorted by URI."""
        args = ["list", uri] + (["-r"] if recursive else [])
        out = self.run(*args).check().stdout.decode("utf-8")
        entries = []
        for line in out.splitlines():
            entry_uri, is_dir, size, _mtime, version = line.split("\t")
            entries.append((entry_uri, is_dir == "1", int(size),
                            None if version == "-" else version))
        return entries

    def error(self, *args):
        """Run a command that must fail; returns the Result."""
        result = self.run(*args)
        assert result.returncode != 0, "expected a failure, got success"
        assert result.error, "no ERROR line in: %s" % result.stderr
        return result
