"""Build step of the pagemesh Python package: bundle the C library and the
daemon into the package (pagemesh/_native/).

The files come from the repository's CMake build directory
($PAGEMESH_BUILD_DIR, else <repo>/build): libpagemesh.so.0, pagemeshd and
pagemesh. If that build does not exist, the C project is configured and
built with CMake (Ninja if present) into a temporary directory first.
Everything else is in pyproject.toml.
"""

import os
import shutil
import subprocess
import tempfile

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
LIBRARY = "libpagemesh.so.0"
PROGRAMS = ("pagemeshd", "pagemesh")


def _complete(build_dir):
    return all(os.path.exists(os.path.join(build_dir, name))
               for name in (LIBRARY,) + PROGRAMS)


def _cmake_build():
    """Build the C project into a temporary directory; returns it."""
    if not os.path.exists(os.path.join(REPO, "CMakeLists.txt")):
        raise RuntimeError("pagemesh: no C build found and no C sources at "
                           "%s; set PAGEMESH_BUILD_DIR" % REPO)
    build_dir = tempfile.mkdtemp(prefix="pagemesh-cbuild-")
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    # The project's default build type; warnings do not fail an install.
    subprocess.check_call(["cmake", "-S", REPO, "-B", build_dir,
                           "-DPM_TESTS=OFF", "-DPM_WERROR=OFF"] + generator)
    subprocess.check_call(["cmake", "--build", build_dir, "--target",
                           "pagemesh", "pagemeshd", "pagemesh_cli"])
    return build_dir


def _native_build_dir():
    """(build directory, whether it is a temporary one of ours)."""
    explicit = os.environ.get("PAGEMESH_BUILD_DIR")
    if explicit:
        if not _complete(explicit):
            raise RuntimeError("PAGEMESH_BUILD_DIR=%s lacks %s" % (
                explicit, ", ".join((LIBRARY,) + PROGRAMS)))
        return explicit, False
    default = os.path.join(REPO, "build")
    if _complete(default):
        return default, False
    return _cmake_build(), True


class BuildPyWithNative(build_py):
    """build_py, plus the C library and programs in pagemesh/_native."""

    def run(self):
        super().run()
        build_dir, temporary = _native_build_dir()
        try:
            native = os.path.join(self.build_lib, "pagemesh", "_native")
            os.makedirs(os.path.join(native, "bin"), exist_ok=True)
            # copy2 follows symlinks: the real library lands as its soname.
            shutil.copy2(os.path.join(build_dir, LIBRARY),
                         os.path.join(native, LIBRARY))
            for name in PROGRAMS:
                shutil.copy2(os.path.join(build_dir, name),
                             os.path.join(native, "bin", name))
        finally:
            if temporary:
                shutil.rmtree(build_dir, ignore_errors=True)


class BinaryDistribution(Distribution):
    """The wheel carries a native library: tag it for this platform."""

    def has_ext_modules(self):
        return True


setup(cmdclass={"build_py": BuildPyWithNative}, distclass=BinaryDistribution)
