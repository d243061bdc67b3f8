"""Fixtures the integration tests share: the module's S3 server (its
BUCKET holding its OBJECTS; a module that needs other contents defines its
own `s3`), the origin proxy in front of it (counting requests, fresh for
each test), and a `pagemesh` command line on a fresh cache directory that
reaches the server through the proxy."""

import pytest

from harness.pagemesh_cli import PagemeshCLI
from harness.s3server import S3Server
from origin_proxy import OriginProxy


@pytest.fixture(scope="module")
def s3(request):
    with S3Server() as server:
        server.create_bucket(request.module.BUCKET)
        server.put_objects(request.module.BUCKET, request.module.OBJECTS)
        yield server


@pytest.fixture
def proxy(s3):
    with OriginProxy(s3.endpoint) as p:
        yield p


@pytest.fixture
def cli(build_dir, tmp_path, s3, proxy):
    return PagemeshCLI(build_dir, str(tmp_path / "cache"),
                       s3.env(endpoint=proxy.url))
