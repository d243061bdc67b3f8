"""Helpers shared by the Python binding tests (fixtures live in
conftest.py)."""

import json
import os
import subprocess

def target_options(s3, endpoint, secret=None):
    """s3fs-style options for the moto server at `endpoint`."""
    return {"key": s3.access_key, "secret": secret or s3.secret_key,
            "endpoint_url": endpoint,
            "client_kwargs": {"region_name": s3.region}}


def origin_requests(proxy):
    """Requests that reached the origin since the last reset."""
    return proxy.stats()["total_requests"]


def origin_bytes(proxy):
    return proxy.stats()["get_bytes"]


def cli_status(cache_dir):
    """`pagemesh status --json` of a cache directory (None: no node)."""
    result = subprocess.run(
        [os.environ["PAGEMESH_PAGEMESH"], "--cache-dir", str(cache_dir),
         "status", "--json"], capture_output=True, timeout=60)
    if result.returncode != 0:
        return None
    return json.loads(result.stdout)
