"""The deployment files under cluster-configs/ that no cluster runs here:

- kubernetes/pagemesh.yaml is validated against the Kubernetes OpenAPI
  schemas bundled in the PyPI package kubernetes-validate (strict: unknown
  fields fail), checked for what the deployment relies on (hostPath cache,
  the key Secret mounted 0400, a headless Service publishing not-ready
  pods, metrics annotations, probes), and its entrypoint script is run for
  real: two "pods" on 127.0.0.1 and 127.0.0.2 form a mesh through it;
- ray/cluster.yaml is loaded with PyYAML and checked for the keys Ray's
  schema requires and for the plugin registration on every node, then
  validated with Ray's own schema when Ray is installed; its node script
  starts a head and a worker pagemeshd that form a mesh;
- every shell script passes shellcheck (when installed).
"""

import glob
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request

import pytest
import yaml

from harness.util import free_port, repo_root

CONFIGS = os.path.join(repo_root(), "cluster-configs")
K8S = os.path.join(CONFIGS, "kubernetes", "pagemesh.yaml")
RAY = os.path.join(CONFIGS, "ray", "cluster.yaml")
RAY_NODE = os.path.join(CONFIGS, "ray", "node", "start-pagemeshd.sh")
PLUGIN = '[{"class":"pagemesh.ray.Plugin"}]'


def k8s_docs():
    with open(K8S) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def by_kind(kind, name=None):
    found = [d for d in k8s_docs() if d["kind"] == kind and
             (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, (kind, name)
    return found[0]


# ---- Kubernetes --------------------------------------------------------------

def test_kubernetes_schema():
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    version = kubernetes_validate.utils.latest_version()
    kinds = []
    for doc in k8s_docs():
        kubernetes_validate.validate(doc, version, strict=True)
        kinds.append(doc["kind"])
    assert sorted(kinds) == ["ConfigMap", "DaemonSet", "Namespace",
                             "Service", "Service"]


def test_kubernetes_schema_rejects_a_mistake():
    """The check is real: a misspelt field fails it."""
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    version = kubernetes_validate.utils.latest_version()
    daemonset = by_kind("DaemonSet")
    daemonset["spec"]["template"]["spec"]["containers"][0]["volumeMount"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(daemonset, version, strict=True)


def test_kubernetes_daemonset_contents():
    spec = by_kind("DaemonSet")["spec"]["template"]
    pod = spec["spec"]
    assert spec["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert spec["metadata"]["annotations"]["prometheus.io/port"] == "9464"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["cache"]["hostPath"]["path"] == "/var/cache/pagemesh"
    secret = volumes["cluster-key-secret"]["secret"]
    assert secret["secretName"] == "pagemesh-cluster-key"
    assert secret["defaultMode"] == 0o400
    container = pod["containers"][0]
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        command = container[probe]["exec"]["command"]
        assert command[0] == "pagemesh" and command[-1] == "status"
    assert container["resources"]["requests"]["memory"]
    ports = {(p["containerPort"], p["protocol"]) for p in container["ports"]}
    assert {(7946, "TCP"), (7946, "UDP"), (9464, "TCP")} <= ports
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == \
        "status.podIP"
    peers = by_kind("Service", "pagemesh-peers")["spec"]
    assert peers["clusterIP"] == "None" and peers["publishNotReadyAddresses"]
    assert env["PAGEMESH_PEERS_SERVICE"]["value"].startswith(
        "pagemesh-peers.")


def config_map_file(name):
    return by_kind("ConfigMap")["data"][name]


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "cluster.key"
    path.write_bytes(os.urandom(32))
    path.chmod(0o400)
    return str(path)


def metrics(port):
    from prometheus_client.parser import text_string_to_metric_families
    url = "http://127.0.0.1:%d/metrics" % port
    with urllib.request.urlopen(url, timeout=5) as answer:
        text = answer.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def alive_members(port):
    try:
        return metrics(port)[("pagemesh_members", (("state", "alive"),))]
    except OSError:
        return None


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise TimeoutError(what)


def stop_all(procs, cache_dirs, build_dir):
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    for cache_dir in cache_dirs:     # daemons started detached
        r = subprocess.run([os.path.join(build_dir, "pagemesh"),
                            "--cache-dir", cache_dir, "status", "--json"],
                           capture_output=True, timeout=30)
        if r.returncode == 0:
            os.kill(json.loads(r.stdout)["node_pid"], signal.SIGTERM)


def test_kubernetes_entrypoint_forms_a_mesh(build_dir, tmp_path, key_file):
    """Two pods, 127.0.0.1 and 127.0.0.2, run the ConfigMap's entrypoint
    with "headless Services" that resolve to numeric addresses."""
    entrypoint = tmp_path / "entrypoint.sh"
    entrypoint.write_text(config_map_file("entrypoint.sh"))
    port, procs, caches = free_port(), [], []
    metrics_ports = [free_port(), free_port()]
    try:
        # The first pod's "service" resolves to itself alone (the first
        # pod of a DaemonSet); the second's to the first.
        for i, (ip, service) in enumerate([("127.0.0.1", "127.0.0.1"),
                                           ("127.0.0.2", "127.0.0.1")]):
            cache = str(tmp_path / ("cache%d" % i))
            caches.append(cache)
            ini = tmp_path / ("pagemesh%d.ini" % i)
            ini.write_text(config_map_file("pagemesh.ini").replace(
                "/var/cache/pagemesh", cache).replace("200G", "1G").replace(
                "= 4G", "= 64M"))
            env = dict(os.environ, POD_IP=ip, PAGEMESH_PEERS_SERVICE=service,
                       PAGEMESH_GOSSIP_PORT=str(port),
                       PAGEMESH_PAGES_PORT=str(free_port()),
                       PAGEMESH_METRICS_LISTEN="127.0.0.1:%d"
                       % metrics_ports[i],
                       PAGEMESH_CLUSTER_KEY_FILE=key_file,
                       PAGEMESH_CONFIG=str(ini), PAGEMESH_SEED_WAIT="0",
                       PAGEMESH_DAEMON=os.path.join(build_dir, "pagemeshd"))
            log = open(tmp_path / ("pod%d.log" % i), "wb")
            procs.append(subprocess.Popen(["/bin/sh", str(entrypoint)],
                                          env=env, stdout=log, stderr=log))
            log.close()
            if i == 0:
                wait_for(lambda: alive_members(metrics_ports[0]) == 1, 20,
                         "the first pod to run alone")
        for i in range(2):
            wait_for(lambda: alive_members(metrics_ports[i]) == 2, 30,
                     "pod %d to see two alive members" % i)
        with open(tmp_path / "pod1.log") as f:
            assert "seeds: 127.0.0.1:%d" % port in f.read()
    finally:
        stop_all(procs, caches, build_dir)


# ---- Ray ---------------------------------------------------------------------

def ray_config():
    with open(RAY) as f:
        return yaml.safe_load(f)


def test_ray_cluster_yaml():
    config = ray_config()
    for key in ("cluster_name", "provider", "head_start_ray_commands",
                "worker_start_ray_commands"):
        assert config.get(key), key
    assert config["provider"]["type"]
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        starts = [c for c in config[key] if "ray start" in c]
        assert len(starts) == 1, key
        assert "RAY_RUNTIME_ENV_PLUGINS='%s'" % PLUGIN in starts[0], key
        assert json.loads(PLUGIN)[0]["class"] == "pagemesh.ray.Plugin"
        assert any("start-pagemeshd.sh" in c for c in config[key]), key
    assert any("pagemesh" in c and "pip install" in c
               for c in config["setup_commands"])
    assert "$RAY_HEAD_IP" in " ".join(config["worker_start_ray_commands"])
    # Every file mount exists or is one the README says to create.
    for local in config["file_mounts"].values():
        path = os.path.join(os.path.dirname(RAY), local)
        assert os.path.exists(path) or local in ("./dist", "./etc"), local


def test_ray_schema():
    """Ray's own schema (ray/autoscaler/ray-schema.json) and its checks,
    after Ray fills in the defaults of the local provider."""
    pytest.importorskip("ray", reason="Ray is not installed: the YAML "
                        "checks above still ran")
    import jsonschema
    import ray.autoscaler
    from ray.autoscaler._private.util import prepare_config, validate_config
    schema_path = os.path.join(os.path.dirname(ray.autoscaler.__file__),
                               "ray-schema.json")
    with open(schema_path) as f:
        jsonschema.validate(ray_config(), json.load(f))
    validate_config(prepare_config(ray_config()))


def test_ray_node_script_forms_a_mesh(build_dir, tmp_path, key_file):
    """The head's start-pagemeshd.sh (no seed) and a worker's (the head's
    IP), on 127.0.0.1 and 127.0.0.2; run again, it keeps the daemon."""
    port = free_port()
    metrics_ports = [free_port(), free_port()]
    caches = [str(tmp_path / "head"), str(tmp_path / "worker")]
    ini = tmp_path / "pagemesh.ini"
    ini.write_text("[pagemesh]\ndisk-capacity = 1G\nram-capacity = 64M\n")
    try:
        for i, (ip, seed) in enumerate([("127.0.0.1", []),
                                        ("127.0.0.2", ["127.0.0.1"])]):
            env = dict(os.environ, PATH=build_dir + ":" + os.environ["PATH"],
                       PAGEMESH_NODE_IP=ip, PAGEMESH_CACHE_DIR=caches[i],
                       PAGEMESH_LISTEN_PORT=str(port),
                       PAGEMESH_CONFIG=str(ini),
                       PAGEMESH_CLUSTER_KEY_FILE=key_file,
                       PAGEMESH_METRICS_LISTEN="127.0.0.1:%d"
                       % metrics_ports[i],
                       PAGEMESH_LOG=str(tmp_path / ("node%d.log" % i)))
            r = subprocess.run(["bash", RAY_NODE] + seed, env=env,
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 0 and "answers" in r.stderr, r.stderr
        for i in range(2):
            wait_for(lambda: alive_members(metrics_ports[i]) == 2, 30,
                     "node %d to see two alive members" % i)
        r = subprocess.run(["bash", RAY_NODE], env=env, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0 and "keeping it" in r.stderr
    finally:
        stop_all([], caches, build_dir)


# ---- shell scripts -----------------------------------------------------------

def test_shellcheck(tmp_path):
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck is not installed (scripts/deps.sh installs "
                    "it)")
    scripts = sorted(glob.glob(os.path.join(CONFIGS, "**", "*.sh"),
                               recursive=True))
    entrypoint = tmp_path / "entrypoint.sh"
    entrypoint.write_text(config_map_file("entrypoint.sh"))
    scripts.append(str(entrypoint))
    scripts.append(os.path.join(CONFIGS, "slurm", "pagemesh-slurm.conf"))
    r = subprocess.run(["shellcheck", "-x"] + scripts, capture_output=True,
                       text=True, cwd=os.path.join(CONFIGS, "slurm"))
    assert r.returncode == 0, r.stdout
