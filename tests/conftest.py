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


@pytest.fixture(scope="session")
def build_dir():
    """The CMake build directory ($PAGEMESH_BUILD_DIR, else build/)."""
    path = util.build_dir()
    if not os.path.isdir(path):
        pytest.fail("no build directory at %s: build first, or set "
                    "PAGEMESH_BUILD_DIR" % path)
    return path
