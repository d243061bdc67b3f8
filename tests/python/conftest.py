"""Fixtures of the Python binding tests: a real S3-compatible server (moto
with SigV4 on) behind a request-counting proxy, and filesystems reading it
through pagemesh.

The tests import the package from this working tree (bindings/python,
also on PYTHONPATH for Ray workers and subprocesses) with the C library
and programs of this build (PAGEMESH_LIBRARY, PAGEMESH_PAGEMESHD), so they
always test the current sources; test_package.py checks the installed
package itself (bundled library, fsspec entry point).
"""

import os
import sys
from importlib import metadata

import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(_HERE))
BINDINGS = os.path.join(ROOT, "bindings", "python")
BUILD = os.environ.get("PAGEMESH_BUILD_DIR") or os.path.join(ROOT, "build")

if BINDINGS not in sys.path:
    sys.path.insert(0, BINDINGS)
os.environ["PYTHONPATH"] = os.pathsep.join(
    [BINDINGS] + [p for p in [os.environ.get("PYTHONPATH")] if p])
for _var, _name in (("PAGEMESH_LIBRARY", "libpagemesh.so.0"),
                    ("PAGEMESH_PAGEMESHD", "pagemeshd"),
                    ("PAGEMESH_PAGEMESH", "pagemesh")):
    if os.path.exists(os.path.join(BUILD, _name)):
        os.environ.setdefault(_var, os.path.join(BUILD, _name))
os.environ.setdefault("PAGEMESH_LOG_LEVEL", "warn")

from harness.s3server import S3Server  # noqa: E402
from origin_proxy import OriginProxy  # noqa: E402

BUCKET = "pm-python"


def pytest_configure(config):
    # Noise of third-party libraries about their own deprecations and this
    # 2-CPU machine, not about pagemesh.
    for spec in ("ignore::DeprecationWarning:ray.*",
                 "ignore:This DataLoader will create:UserWarning"):
        config.addinivalue_line("filterwarnings", spec)
    names = {ep.name for ep in metadata.entry_points(group="fsspec.specs")}
    if "pagemesh" not in names:
        pytest.exit("the pagemesh package is not installed in this Python "
                    "(%s): run scripts/test.sh, or pip install "
                    "./bindings/python" % sys.executable, returncode=2)


@pytest.fixture(scope="module")
def s3():
    with S3Server() as server:
        server.create_bucket(BUCKET)
        yield server


@pytest.fixture(scope="module")
def proxy(s3):
    with OriginProxy(s3.endpoint) as p:
        yield p
