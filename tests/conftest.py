"""pytest configuration shared by every test under tests/: makes the test
harness (tests/harness, imported as ``harness``) and perf/ helpers (such as
``origin_proxy``) importable, and offers fixtures that locate the build."""

import os
import sys

import pytest

_TESTS = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_TESTS)
for _path in (_TESTS, os.path.join(_ROOT, "perf")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from harness import util  # noqa: E402

# No process a test starts asks an EC2 metadata service for a role (the
# tests only use 127.0.0.0/8; a CI machine may be an EC2 instance). The
# tests of that path set AWS_EC2_METADATA_SERVICE_ENDPOINT and clear this.
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
os.environ.setdefault("NO_GCE_CHECK", "true")  # and no GCE metadata server
os.environ.setdefault("PAGEMESH_AZURE_MANAGED_IDENTITY", "off")  # nor Azure's


@pytest.fixture(scope="session")
def build_dir():
    """The CMake build directory ($PAGEMESH_BUILD_DIR, else build/)."""
    path = util.build_dir()
    if not os.path.isdir(path):
        pytest.fail("no build directory at %s: build first, or set "
                    "PAGEMESH_BUILD_DIR" % path)
    return path
