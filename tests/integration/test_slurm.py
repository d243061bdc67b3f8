"""pagemesh's Slurm prolog, epilog and task prolog
(cluster-configs/slurm/) under a real one-node Slurm cluster: Debian's
slurmctld and slurmd with munge, configured in a temporary directory on
ports of their own. Jobs read a dataset from a real S3-compatible server
(moto, behind a proxy that counts origin requests) through the pagemeshd
the prolog started:

- job 1: the prolog starts pagemeshd, which serves the job's reads;
- job 2: the prolog reuses that daemon and its warm cache: zero origin
  GETs;
- job 3: a broken site configuration (the cache directory cannot be
  created): the job still runs and reads the origin directly, and the node
  is not drained;
- jobs 4 and 5 with STOP_ON_EPILOG=yes: the epilog of the short job keeps
  the daemon while the long job runs; the long job's epilog stops it.

The prolog is also run by hand, outside Slurm, to check the seeds it
derives from a node list and what it does without a site configuration.
"""

import hashlib
import os
import random
import shutil
import signal
import subprocess
import textwrap
import time

import pytest

from harness.util import free_port, repo_root
from origin_proxy import OriginProxy

BUCKET = "pm-slurm"
KiB = 1024
PAGE = 256 * KiB
OBJECTS = {"train/shard-%d.bin" % i: random.Random(100 + i).randbytes(
    2 * PAGE + 777 * i) for i in range(4)}
PAGES = sum((len(v) + PAGE - 1) // PAGE for v in OBJECTS.values())
SIZE = sum(len(v) for v in OBJECTS.values())
SLURM_DIR = os.path.join(repo_root(), "cluster-configs", "slurm")
DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "scontrol")


def ensure_slurm():
    """Install slurm-wlm and munge from apt if they are missing (as
    scripts/deps.sh does); skip only where that is impossible."""
    if all(shutil.which(p) or os.path.exists("/usr/sbin/" + p)
           for p in DAEMONS):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("slurm-wlm and munge are not installed, and apt-get "
                    "cannot install them here (not root or no apt)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=False,
                   capture_output=True, timeout=300)
    subprocess.run(["apt-get", "install", "-y", "-qq", "slurm-wlm", "munge"],
                   env=env, check=True, capture_output=True, timeout=600)


def wait_until(predicate, timeout, what, interval=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError("%s within %.0f s" % (what, timeout))


class Cluster:
    """munged, slurmctld and slurmd for one node, "localhost", configured
    under root; Prolog/Epilog/TaskProlog are wrappers that point the
    repository's scripts at the test's site configuration."""

    def __init__(self, root, build_dir, origin_env):
        self.root = str(root)
        self.build_dir = build_dir
        self.conf = os.path.join(self.root, "slurm.conf")
        self.site_conf = os.path.join(self.root, "site.conf")
        self.slurm_log = os.path.join(self.root, "log", "pm-slurm.log")
        self.daemon_log = os.path.join(self.root, "log", "pagemeshd.log")
        self.state_dir = os.path.join(self.root, "run")
        self.cache_dir = os.path.join(self.root, "cache")
        self.listen_port = free_port()
        self.origin_env_file = os.path.join(self.root, "origin.env")
        self.env = dict(os.environ, SLURM_CONF=self.conf)
        self.procs = []
        with open(self.origin_env_file, "w") as f:
            f.writelines("%s=%s\n" % kv for kv in origin_env.items())
        os.chmod(self.origin_env_file, 0o600)

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def write_site_conf(self, **override):
        values = dict(
            PAGEMESH_BIN=self.build_dir, CACHE_DIR=self.cache_dir,
            DISK_CAPACITY="256M", RAM_CAPACITY="32M", PAGE_SIZE=str(PAGE),
            LISTEN_PORT=str(self.listen_port),
            CLUSTER_KEY_FILE=self.path("cluster.key"),
            ORIGIN_ENV_FILE=self.origin_env_file,
            DAEMON_LOG=self.daemon_log, SLURM_LOG=self.slurm_log,
            STATE_DIR=self.state_dir, STOP_ON_EPILOG="no", START_TIMEOUT="20",
            NODE_ADDR="127.0.0.1")  # tests stay on loopback
        values.update(override)
        with open(self.site_conf, "w") as f:
            f.writelines("%s=%s\n" % kv for kv in values.items())

    def write_files(self):
        for d in ("state", "spool", "log", "run"):
            os.makedirs(self.path(d), exist_ok=True)
        os.makedirs(self.path("munge"), mode=0o755, exist_ok=True)
        os.chmod(self.path("munge"), 0o755)
        with open(self.path("munge", "munge.key"), "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(self.path("munge", "munge.key"), 0o400)
        with open(self.path("cluster.key"), "wb") as f:
            f.write(os.urandom(32))
        os.chmod(self.path("cluster.key"), 0o400)
        for name in ("prolog", "epilog", "task_prolog"):
            with open(self.path(name), "w") as f:
                f.write("#!/bin/sh\nPAGEMESH_SLURM_CONF=%s exec %s/%s.sh\n"
                        % (self.site_conf, SLURM_DIR, name))
            os.chmod(self.path(name), 0o755)
        self.write_site_conf()
        with open(self.conf, "w") as f:
            f.write(textwrap.dedent("""\
                ClusterName=pmtest
                SlurmctldHost=localhost(127.0.0.1)
                SlurmctldPort={ctld_port}
                SlurmdPort={d_port}
                AuthType=auth/munge
                CredType=cred/munge
                AuthInfo=socket={root}/munge/munge.socket.2
                SlurmUser=root
                SlurmdUser=root
                StateSaveLocation={root}/state
                SlurmdSpoolDir={root}/spool
                SlurmctldPidFile={root}/slurmctld.pid
                SlurmdPidFile={root}/slurmd.pid
                SlurmctldLogFile={root}/log/slurmctld.log
                SlurmdLogFile={root}/log/slurmd.log
                ProctrackType=proctrack/linuxproc
                TaskPlugin=task/none
                SelectType=select/cons_tres
                SelectTypeParameters=CR_CPU
                MpiDefault=none
                ReturnToService=2
                PrologFlags=Alloc
                Prolog={root}/prolog
                Epilog={root}/epilog
                TaskProlog={root}/task_prolog
                JobCompType=jobcomp/none
                AccountingStorageType=accounting_storage/none
                SlurmdParameters=config_overrides
                NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
                PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
                """).format(root=self.root, ctld_port=free_port(),
                            d_port=free_port()))

    def start(self):
        self.write_files()
        munge = self.path("munge")
        subprocess.run(
            ["munged", "-f", "-S", munge + "/munge.socket.2",
             "--key-file=" + munge + "/munge.key",
             "--log-file=" + munge + "/munged.log",
             "--pid-file=" + munge + "/munged.pid",
             "--seed-file=" + munge + "/munged.seed"],
            check=True, capture_output=True, timeout=30)
        for argv in (["slurmctld", "-D", "-f", self.conf],
                     ["slurmd", "-D", "-N", "localhost", "-f", self.conf]):
            log = open(self.path("log", argv[0] + ".out"), "wb")
            self.procs.append(subprocess.Popen(
                argv, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True))
            log.close()
        wait_until(lambda: self.node_state() == "idle", 60,
                   "the Slurm node to be idle")
        return self

    def run(self, *argv, check=True):
        return subprocess.run(list(argv), env=self.env, capture_output=True,
                              text=True, timeout=60, check=check)

    def node_state(self):
        result = self.run("sinfo", "-h", "-o", "%T", check=False)
        return result.stdout.strip() if result.returncode == 0 else None

    def submit(self, script, env=None, wait=True):
        full_env = dict(self.env)
        full_env.update(env or {})
        out = self.path("job-%d.out" % time.monotonic_ns())
        result = subprocess.run(
            ["sbatch", "--parsable", "-o", out, "-e", out], input=script,
            env=full_env, capture_output=True, text=True, timeout=60,
            check=True)
        job = result.stdout.strip().split(";")[0]
        if wait:
            self.wait_job(job)
        return job, out

    def wait_job(self, job, timeout=60):
        """Until the job left the queue (its epilog included)."""
        def gone():
            r = self.run("squeue", "-h", "-j", job, check=False)
            return r.returncode != 0 or not r.stdout.strip()
        wait_until(gone, timeout, "job %s to finish" % job)

    def job_field(self, job, name):
        text = self.run("scontrol", "show", "job", job, "-o").stdout
        for word in text.split():
            if word.startswith(name + "="):
                return word.split("=", 1)[1]
        return None

    def pagemesh(self, *args, cache_dir=None):
        return subprocess.run(
            [os.path.join(self.build_dir, "pagemesh"), "--cache-dir",
             cache_dir or self.cache_dir] + list(args),
            capture_output=True, timeout=60)

    def node_status(self, cache_dir=None):
        import json
        r = self.pagemesh("status", "--json", cache_dir=cache_dir)
        return json.loads(r.stdout) if r.returncode == 0 else None

    def log_lines(self):
        try:
            with open(self.slurm_log) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def stop_pagemeshd(self, cache_dir=None):
        status = self.node_status(cache_dir)
        if not status:
            return
        pid = status["node_pid"]
        try:
            os.kill(pid, signal.SIGTERM)
            wait_until(lambda: not os.path.exists("/proc/%d" % pid), 15,
                       "pagemeshd to stop")
        except (ProcessLookupError, TimeoutError):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop(self):
        self.run("scancel", "--user", "root", check=False)
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        self.stop_pagemeshd()
        try:
            with open(self.path("munge", "munged.pid")) as f:
                os.kill(int(f.read().strip()), signal.SIGTERM)
        except (OSError, ValueError):
            pass

    def diagnostics(self):
        parts = []
        for name in ("log/pm-slurm.log", "log/pagemeshd.log",
                     "log/slurmd.log", "log/slurmctld.log"):
            try:
                with open(self.path(name)) as f:
                    parts.append("== %s\n%s" % (name, f.read()[-3000:]))
            except FileNotFoundError:
                pass
        return "\n".join(parts)


@pytest.fixture(scope="module")
def proxy(s3):
    with OriginProxy(s3.endpoint) as p:
        yield p


@pytest.fixture(scope="module")
def cluster(build_dir, tmp_path_factory, s3, proxy):
    ensure_slurm()
    origin = s3.env(endpoint=proxy.url)
    c = Cluster(tmp_path_factory.mktemp("slurm"), build_dir, origin)
    try:
        c.start()
        yield c
    finally:
        c.stop()


def job_script(build_dir):
    """Reads every object through pagemesh when the task prolog says the
    cache is there, else straight from the origin (--no-cache)."""
    pagemesh = os.path.join(build_dir, "pagemesh")
    lines = ["#!/bin/bash", "set -u",
             'echo "slurm=${PAGEMESH_SLURM:-unset} '
             'cache=${PAGEMESH_CACHE_DIR:-unset}"',
             'if [ "${PAGEMESH_SLURM:-}" = ok ]; then mode=""; '
             'else mode=--no-cache; fi']
    for key in sorted(OBJECTS):
        lines.append('echo "%s $(%s $mode cat s3://%s/%s | sha256sum | '
                     'cut -d" " -f1)"' % (key, pagemesh, BUCKET, key))
    return "\n".join(lines) + "\n"


def read_output(out):
    with open(out) as f:
        lines = f.read().splitlines()
    header = dict(w.split("=", 1) for w in lines[0].split())
    digests = dict(line.split() for line in lines[1:] if line.strip())
    return header, digests


def check_job(cluster, job, out):
    state = cluster.job_field(job, "JobState")
    assert state == "COMPLETED", "job %s is %s\n%s" % (
        job, state, cluster.diagnostics())
    assert cluster.job_field(job, "ExitCode") == "0:0"
    header, digests = read_output(out)
    for key, data in OBJECTS.items():
        assert digests.get(key) == hashlib.sha256(data).hexdigest(), key
    return header


def origin_gets(proxy):
    return proxy.stats()["requests"].get("GET", 0)


def test_jobs_through_the_prolog_daemon(cluster, proxy, build_dir):
    script = job_script(build_dir)
    origin = {k: v for k, v in cluster.env.items()}
    with open(cluster.origin_env_file) as f:   # for --no-cache reads
        origin.update(line.strip().split("=", 1) for line in f if "=" in line)

    # Job 1: the prolog starts pagemeshd; the job reads through it.
    proxy.reset_stats()
    job, out = cluster.submit(script, env=origin)
    header = check_job(cluster, job, out)
    assert header == {"slurm": "ok", "cache": cluster.cache_dir}
    status = cluster.node_status()
    assert status, "no pagemeshd after job 1\n" + cluster.diagnostics()
    node_pid = status["node_pid"]
    started = [line for line in cluster.log_lines()
               if "job %s:" % job in line and "pagemeshd answers" in line]
    assert started and "(pid %d)" % node_pid in started[0], \
        cluster.diagnostics()
    with open("/proc/%d/cmdline" % node_pid, "rb") as f:
        assert b"pagemeshd" in f.read().split(b"\0")[0]
    with open("/proc/%d/stat" % node_pid) as f:    # detached: own session
        fields = f.read().rsplit(")", 1)[1].split()
    assert int(fields[3]) == node_pid, "pagemeshd is not a session leader"
    stats = status["stats"]
    assert stats["origin_bytes"] == SIZE
    assert stats["bytes_served"] == SIZE
    assert origin_gets(proxy) == PAGES
    assert any("--listen 127.0.0.1:%d" % cluster.listen_port in line
               for line in cluster.log_lines())

    # Job 2: the same daemon, a warm cache, no origin GET.
    proxy.reset_stats()
    job, out = cluster.submit(script, env=origin)
    check_job(cluster, job, out)
    assert origin_gets(proxy) == 0
    status = cluster.node_status()
    assert status["node_pid"] == node_pid
    assert status["stats"]["bytes_served"] == 2 * SIZE
    assert status["stats"]["origin_bytes"] == SIZE
    assert any("job %s: reusing the running node peer (pid %d)"
               % (job, node_pid) in line for line in cluster.log_lines())

    # Job 3: the site configuration points at a cache directory that
    # cannot exist. The job runs, reads the origin, the node stays up.
    blocker = cluster.path("not-a-dir")
    open(blocker, "w").close()
    broken_cache = os.path.join(blocker, "cache")
    cluster.write_site_conf(CACHE_DIR=broken_cache)
    proxy.reset_stats()
    job, out = cluster.submit(script, env=origin)
    header = check_job(cluster, job, out)
    assert header["slurm"] == "unavailable"
    assert origin_gets(proxy) >= len(OBJECTS)    # read the origin directly
    assert any("job %s: cannot create %s" % (job, broken_cache) in line
               for line in cluster.log_lines()), cluster.diagnostics()
    assert cluster.node_state() == "idle"        # not drained
    assert cluster.node_status()["node_pid"] == node_pid  # untouched

    # Jobs 4 and 5, STOP_ON_EPILOG=yes: never stop what a job still uses.
    cluster.write_site_conf(STOP_ON_EPILOG="yes")
    long_job, _ = cluster.submit("#!/bin/bash\nsleep 120\n", wait=False)
    wait_until(lambda: cluster.job_field(long_job, "JobState") == "RUNNING",
               30, "the long job to run")
    job, out = cluster.submit(script, env=origin)
    check_job(cluster, job, out)
    assert cluster.node_status()["node_pid"] == node_pid
    assert any("job %s: keeping pagemeshd (pid %d): jobs %s still run"
               % (job, node_pid, long_job) in line
               for line in cluster.log_lines()), cluster.diagnostics()
    cluster.run("scancel", long_job)
    cluster.wait_job(long_job)
    wait_until(lambda: not os.path.exists("/proc/%d" % node_pid), 30,
               "the last epilog to stop pagemeshd")
    assert any("job %s: pagemeshd (pid %d) stopped" % (long_job, node_pid)
               in line for line in cluster.log_lines())
    assert cluster.node_state() == "idle"
    assert not [f for f in os.listdir(cluster.state_dir)
                if f.startswith("job-")]


def run_script(cluster, name, conf, **env):
    full = dict(cluster.env, PAGEMESH_SLURM_CONF=conf, SLURM_JOB_ID="9001",
                SLURMD_NODENAME="localhost")
    full.update(env)
    return subprocess.run([os.path.join(SLURM_DIR, name)], env=full,
                          capture_output=True, text=True, timeout=60)


def test_prolog_by_hand(cluster, tmp_path):
    """Seeds from the node list, the task prolog's exports, and the
    epilog stopping an unused daemon; then no site configuration at all."""
    conf = tmp_path / "site.conf"
    log = tmp_path / "slurm.log"
    port = free_port()
    conf.write_text("\n".join([
        "PAGEMESH_BIN=%s" % cluster.build_dir,
        "CACHE_DIR=%s" % (tmp_path / "cache"),
        "LISTEN_PORT=%d" % port, "NODE_ADDR=127.0.0.1",
        "CLUSTER_KEY_FILE=%s" % cluster.path("cluster.key"),
        "DAEMON_LOG=%s" % (tmp_path / "pagemeshd.log"),
        "SLURM_LOG=%s" % log, "STATE_DIR=%s" % (tmp_path / "run"),
        "STOP_ON_EPILOG=yes", ""]))
    try:
        r = run_script(cluster, "prolog.sh", str(conf),
                       SLURM_NODELIST="localhost,127.0.0.2,127.0.0.3")
        assert r.returncode == 0, r.stderr
        text = log.read_text()
        assert "--listen 127.0.0.1:%d" % port in text
        assert "--seeds 127.0.0.2:%d,127.0.0.3:%d" % (port, port) in text
        r = run_script(cluster, "task_prolog.sh", str(conf))
        assert r.stdout.splitlines() == [
            "export PAGEMESH_CACHE_DIR=%s" % (tmp_path / "cache"),
            "export PAGEMESH_SLURM=ok"]
        pid = cluster.node_status(str(tmp_path / "cache"))["node_pid"]
        r = run_script(cluster, "epilog.sh", str(conf))
        assert r.returncode == 0
        assert not os.path.exists("/proc/%d" % pid) or \
            wait_until(lambda: not os.path.exists("/proc/%d" % pid), 10,
                       "pagemeshd to stop")
        assert "pagemeshd (pid %d) stopped" % pid in log.read_text()
    finally:
        cluster.stop_pagemeshd(str(tmp_path / "cache"))

    missing = str(tmp_path / "no-such.conf")
    r = run_script(cluster, "prolog.sh", missing)
    assert r.returncode == 0 and "no site configuration" in r.stderr
    r = run_script(cluster, "task_prolog.sh", missing)
    assert r.returncode == 0
    assert r.stdout.splitlines() == ["export PAGEMESH_SLURM=unavailable"]
    r = run_script(cluster, "epilog.sh", missing)
    assert r.returncode == 0


def test_prolog_as_a_daemon_user_and_for_other_users(cluster):
    """DAEMON_USER: the daemon's log is that user's before it starts (the
    launch, as root, created it root's and pagemeshd could not open it:
    every job 'unavailable'), and the key is checked as that user. A
    daemon without NODE_GROUP answers only its own user: another job
    user is told 'unavailable', not 'ok' for a cache it cannot attach to.
    A node name that resolves to loopback is not what the mesh is told."""
    import pwd
    import shutil
    import tempfile
    nobody = pwd.getpwnam("nobody")
    root = tempfile.mkdtemp(prefix="pm-slurm-user-", dir="/tmp")
    os.chmod(root, 0o755)
    try:
        key = os.path.join(root, "cluster.key")
        with open(key, "wb") as f:
            f.write(os.urandom(32))
        os.chmod(key, 0o400)  # root's: not readable by the daemon user
        conf = os.path.join(root, "site.conf")
        log = os.path.join(root, "slurm.log")
        with open(conf, "w") as f:
            f.write("\n".join([
                "PAGEMESH_BIN=%s" % cluster.build_dir,
                "CACHE_DIR=%s/cache" % root, "DAEMON_USER=nobody",
                "LISTEN_PORT=%d" % free_port(), "NODE_ADDR=127.0.0.1",
                "CLUSTER_KEY_FILE=%s" % key,
                "DAEMON_LOG=%s/log/pagemeshd.log" % root,
                "SLURM_LOG=%s" % log, "STATE_DIR=%s/run" % root,
                "START_TIMEOUT=20", ""]))
        r = run_script(cluster, "prolog.sh", conf)
        assert r.returncode == 0, r.stderr
        text = open(log).read()
        assert "pagemeshd answers" in text, text
        assert "not readable by nobody" in text, text
        st = os.stat(os.path.join(root, "log", "pagemeshd.log"))
        assert st.st_uid == nobody.pw_uid
        status = cluster.node_status(os.path.join(root, "cache"))
        pid = status["node_pid"]
        assert os.stat("/proc/%d" % pid).st_uid == nobody.pw_uid
        def task_prolog_as_nobody(conf):
            return subprocess.run(
                ["runuser", "-u", "nobody", "--",
                 os.path.join(SLURM_DIR, "task_prolog.sh")],
                env=dict(cluster.env, PAGEMESH_SLURM_CONF=conf,
                         SLURM_JOB_ID="9001"),
                capture_output=True, text=True, timeout=60)

        r = task_prolog_as_nobody(conf)
        assert "export PAGEMESH_SLURM=ok" in r.stdout.splitlines(), r
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not os.path.exists("/proc/%d" % pid), 20,
                   "pagemeshd to stop")
        # A daemon of root without NODE_GROUP answers root only: a job of
        # another user is told "unavailable", not "ok" for a cache it
        # cannot attach to.
        with open(conf) as f:
            text = f.read()
        with open(conf, "w") as f:
            f.write(text.replace("DAEMON_USER=nobody", "DAEMON_USER=")
                    .replace("cache\n", "cache-root\n"))
        r = run_script(cluster, "prolog.sh", conf)
        assert r.returncode == 0, r.stderr
        pid = cluster.node_status(os.path.join(root, "cache-root"))[
            "node_pid"]
        r = task_prolog_as_nobody(conf)
        assert r.stdout.splitlines() == [
            "export PAGEMESH_SLURM=unavailable"], r
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not os.path.exists("/proc/%d" % pid), 20,
                   "pagemeshd to stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    # The node's own address: not a loopback one its name may resolve to
    # (only the function: a test may not listen elsewhere than loopback).
    script = ('pm_log() { :; }; eval "$(sed -n \'/^resolve()/,/^}/p;'
              '/^self_address()/,/^}/p\' %s)"; self_address localhost'
              % os.path.join(SLURM_DIR, "prolog.sh"))
    r = subprocess.run(["bash", "-c", script], capture_output=True,
                       text=True, timeout=30)
    others = [a for a in subprocess.run(
        ["hostname", "-I"], capture_output=True, text=True).stdout.split()
        if "." in a and not a.startswith("127.")]
    assert r.stdout == (others[0] if others else "127.0.0.1"), r
