"""Origins over TLS with a private certificate authority (ufs/curl_ca.c):
moto and a plain HTTP origin behind a TLS front on 127.0.0.1 whose
certificate is signed by a CA made for the run. Without a CA variable the
certificate does not verify (and that is not retried); with AWS_CA_BUNDLE
(S3), CURL_CA_BUNDLE, REQUESTS_CA_BUNDLE or SSL_CERT_FILE naming the CA it
is trusted; a variable naming no file is PM_ECONFIG. A handshake reset
before it starts (CURLE_SSL_CONNECT_ERROR) is retried. Driven through
pm_ufs_driver and the `pagemesh` command."""

import random

import pytest

from harness import util
from harness.httpserver import HTTPOrigin
from harness.pagemesh_cli import PagemeshCLI
from harness.s3server import S3Server
from harness.tls_front import TLSFront
from harness.ufs_driver import Driver

BUCKET = "pm-tls"
# What the machine's environment may already set (to the system's bundle):
# each test names only the one it tries.
CA_VARS = ("AWS_CA_BUNDLE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE",
           "SSL_CERT_FILE", "SSL_CERT_DIR")


def env_without_ca(tmp_path, **extra):
    env = util.clean_env(tmp_path, **extra)
    for var in CA_VARS:
        if var not in extra:
            env.pop(var, None)
    return env
BLOB = random.Random(11).randbytes(300 * 1024)


@pytest.fixture(scope="module")
def s3():
    with S3Server() as server:
        server.create_bucket(BUCKET)
        server.put_object(BUCKET, "data/blob.bin", BLOB)
        yield server


@pytest.fixture(scope="module")
def front(s3):
    with TLSFront(s3.port) as f:
        yield f


@pytest.fixture
def driver(s3, front, tmp_path):
    front.drop_handshakes(0)
    return Driver(env_without_ca(tmp_path, **s3.env(endpoint=front.url)))


URI = "s3://%s/data/blob.bin" % BUCKET


def test_a_private_ca_is_trusted_only_when_named(driver, front):
    res = driver.with_env(PAGEMESH_ORIGIN_RETRIES=3).error("stat", URI)
    assert res.error == "PM_EUNREACHABLE" and "certificate" in res.detail
    accepted = front.accepted
    driver.with_env(PAGEMESH_ORIGIN_RETRIES=3).error("stat", URI)
    assert front.accepted == accepted + 1, "a bad certificate is not retried"
    for var in CA_VARS[:-1]:
        trusting = driver.with_env(**{var: front.ca_file})
        assert trusting.stat(URI)["size"] == len(BLOB), var
        assert trusting.read(URI, 1000, 5000) == BLOB[1000:6000], var


def test_a_ca_variable_that_names_no_file_is_a_config_error(driver, tmp_path):
    missing = str(tmp_path / "no-such-ca.pem")
    res = driver.with_env(AWS_CA_BUNDLE=missing).error("stat", URI)
    assert res.error == "PM_ECONFIG"
    assert "AWS_CA_BUNDLE" in res.detail and missing in res.detail


def test_a_reset_handshake_is_retried(driver, front):
    trusting = driver.with_env(AWS_CA_BUNDLE=front.ca_file)
    front.drop_handshakes(1)
    accepted = front.accepted
    assert trusting.read(URI, 0, 4096) == BLOB[:4096]
    assert front.accepted >= accepted + 2
    front.drop_handshakes(100)
    res = trusting.with_env(PAGEMESH_ORIGIN_RETRIES=1).error("stat", URI)
    assert res.error == "PM_EUNREACHABLE" and "2 attempts" in res.detail


def test_https_origin_and_the_command(build_dir, tmp_path):
    with HTTPOrigin() as web, TLSFront(web.port) as front:
        web.put("/data.bin", BLOB)
        url = front.url + "/data.bin"
        env = env_without_ca(tmp_path, REQUESTS_CA_BUNDLE=front.ca_file)
        assert Driver(env).read(url, 10, 100) == BLOB[10:110]
        # (PagemeshCLI starts from os.environ: empty is unset)
        cli_env = {var: "" for var in CA_VARS}
        cli_env["REQUESTS_CA_BUNDLE"] = front.ca_file
        cli = PagemeshCLI(build_dir, str(tmp_path / "cache"), cli_env)
        assert cli.cat(url) == BLOB
