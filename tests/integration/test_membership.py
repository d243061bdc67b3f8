"""Membership with real processes: five pagemeshd peers on loopback find
each other through seeds, mark a SIGKILLed peer Dead within the suspicion
bound, see it come back as a new boot epoch, and never see a peer that
lacks the cluster key."""

import os
import shutil
import subprocess
import time

import pytest

from harness.mesh import Mesh, write_key

# LAN defaults (membership/swim_int.h): probe every 1 s, probe timeout
# 0.5 s, suspicion multiplier 4 and max multiplier 6: a Dead verdict comes
# at most one probe round plus the longest suspicion after the kill.
PROBE_S = 1.0
SUSPICION_MAX_S = 4 * 1 * PROBE_S * 6


@pytest.fixture
def mesh(build_dir, tmp_path):
    with Mesh(build_dir, tmp_path, count=5) as m:
        yield m


def test_five_peers_kill_restart_and_a_stranger(mesh, tmp_path):
    mesh.wait_members(5, timeout=30)

    victim = 3
    victim_addr = mesh.addr(victim)
    before = {m["addr"]: m for m in mesh.members(0)}
    killed = time.monotonic()
    mesh.kill(victim)
    others = [0, 1, 2, 4]
    bound = PROBE_S * 2 + SUSPICION_MAX_S
    done = mesh.wait(lambda: all(mesh.states(i).get(victim_addr) == "dead"
                                 for i in others),
                     timeout=bound + 5, what="all mark the killed peer dead")
    took = done - killed
    print("dead everywhere after %.1f s (bound %.1f s)" % (took, bound))
    assert took <= bound

    mesh.start(victim)
    mesh.wait_members(5, timeout=30)
    after = {m["addr"]: m for m in mesh.members(0)}
    assert after[victim_addr]["state"] == "alive"
    assert after[victim_addr]["id"] == before[victim_addr]["id"], \
        "a restarted node keeps its member id (its cache stays placed)"
    assert after[victim_addr]["boot_epoch"] > before[victim_addr]["boot_epoch"]

    # A sixth peer with another key: nobody ever lists it, it sees nobody.
    stranger_key = write_key(os.path.join(str(tmp_path), "other.key"))
    stranger = Mesh(mesh.build_dir, tmp_path / "stranger", count=1,
                    key=stranger_key, extra_args=["--seeds", mesh.addr(0)])
    os.makedirs(stranger.root, exist_ok=True)
    stranger.start(0)
    try:
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            for i in range(5):
                assert stranger.addr(0) not in mesh.states(i)
            time.sleep(0.5)
        seen = stranger.states(0)
        assert set(seen) <= {stranger.addr(0)}, seen
    finally:
        stranger.stop_all()


def test_a_seed_that_is_not_host_port_is_refused(build_dir, tmp_path):
    """A typo in --seeds stops pagemeshd at start, naming the seed, rather
    than leaving it waiting for a member that cannot answer."""
    key = write_key(str(tmp_path / "cluster.key"))
    for seeds in ("foo:bar,127.0.0.1:1", "127.0.0.1", "host:70000",
                  "[::1:7946"):
        r = subprocess.run(
            [os.path.join(build_dir, "pagemeshd"), "--cache-dir",
             str(tmp_path / "cache"), "--listen", "127.0.0.1:0",
             "--cluster-key-file", key, "--seeds", seeds],
            capture_output=True, timeout=60)
        assert r.returncode != 0, (seeds, r.stderr)
        assert b"is not HOST:PORT" in r.stderr + r.stdout, (seeds, r.stderr)


def test_a_seed_named_by_host_name_is_joined(build_dir, tmp_path):
    """--seeds localhost:PORT joins (the name is resolved at start; the
    node ran alone before, saying nothing), and a name that does not
    resolve stops pagemeshd, naming it."""
    m = Mesh(build_dir, tmp_path, count=2)  # not started: not `with`
    try:
        m.procs[0] = m.cli(0).start_daemon(
            "--listen", m.addr(0), "--cluster-key-file", m.key)
        m.procs[1] = m.cli(1).start_daemon(
            "--listen", m.addr(1), "--cluster-key-file", m.key,
            "--seeds", "localhost:%d" % m.ports[0])
        m.wait_members(2, timeout=30)
    finally:
        m.stop_all()
    key = write_key(str(tmp_path / "cluster2.key"))
    r = subprocess.run(
        [os.path.join(build_dir, "pagemeshd"), "--cache-dir",
         str(tmp_path / "cache"), "--listen", "127.0.0.1:0",
         "--cluster-key-file", key, "--seeds", "no-such-host.invalid:7946"],
        capture_output=True, timeout=60)
    assert r.returncode != 0
    assert b"cannot resolve no-such-host.invalid" in r.stderr, r.stderr


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                    reason="needs root and unshare (its own /etc/hosts)")
def test_a_seed_name_resolves_to_the_family_the_peer_listens_on(
        build_dir, tmp_path):
    """A seed name with an IPv6 address first (as "localhost" has on many
    hosts: ::1, then 127.0.0.1) is taken at its IPv4 address by a peer
    listening on IPv4: the first address was taken, and the peer never
    reached the seed. The second peer runs in a mount namespace of its own
    whose /etc/hosts says so."""
    hosts = tmp_path / "hosts"
    hosts.write_text("::1 pm-seed-test\n127.0.0.1 pm-seed-test\n")
    # A mount namespace may be refused (a container without
    # CAP_SYS_ADMIN), and the name may be resolved past /etc/hosts
    # (systemd-resolved): then there is nothing to test here.
    probe = subprocess.run(
        ["unshare", "--mount", "sh", "-c",
         'mount --bind "$0" /etc/hosts && getent ahosts pm-seed-test',
         str(hosts)], capture_output=True, timeout=30)
    if probe.returncode != 0 or not probe.stdout.startswith(b"::1"):
        pytest.skip("no private /etc/hosts here: %s"
                    % (probe.stderr or probe.stdout)[:200])
    m = Mesh(build_dir, tmp_path, count=2)  # not started: not `with`
    try:
        m.procs[0] = m.cli(0).start_daemon(
            "--listen", m.addr(0), "--cluster-key-file", m.key)
        cli = m.cli(1)
        log = tmp_path / "peer1.log"
        m.procs[1] = cli.popen(
            ["unshare", "--mount", "sh", "-c",
             'mount --bind "$0" /etc/hosts && exec "$@"', str(hosts),
             cli.pagemeshd, "--cache-dir", cli.cache_dir, "--listen",
             m.addr(1), "--cluster-key-file", m.key, "--log-file", str(log),
             "--seeds", "pm-seed-test:%d" % m.ports[0]],
            env={"PAGEMESH_LOG_LEVEL": "info"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cli.wait_for_node(lambda: m.procs[1].poll() is None)
        m.wait_members(2, timeout=30)
        assert "is 127.0.0.1:%d" % m.ports[0] in log.read_text()
    finally:
        m.stop_all()


def test_a_restart_has_a_higher_epoch_even_if_the_clock_went_back(
        build_dir, tmp_path):
    """Other members tell a restarted node from its past by a higher boot
    epoch; one taken from a clock that stepped back (NTP correcting a
    clock that was ahead at the last start) was lower, and the new life
    was ignored for the old one. The epoch is kept past restarts."""
    with Mesh(build_dir, tmp_path, count=1) as m:  # started
        first = m.members(0)[0]["boot_epoch"]
        m.stop_all()
        ahead = first + 3600 * 10**9  # as if the last start's clock was
        with open(os.path.join(m.cache_dir(0), "member.epoch"), "w") as f:
            f.write("%d\n" % ahead)
        m.start(0)
        assert m.members(0)[0]["boot_epoch"] > ahead
