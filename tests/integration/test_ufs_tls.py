"""Origins over TLS with a private certificate authority (ufs/curl_ca.c):
moto, a plain HTTP origin and a token endpoint behind a TLS front on
127.0.0.1 whose certificate is signed by a CA made for the run. Without a
CA variable the certificate does not verify (and that is not retried);
with AWS_CA_BUNDLE (S3), REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE or
SSL_CERT_FILE naming the CA it is trusted, in that order, and so is a
hashed directory (SSL_CERT_DIR, or a directory in REQUESTS_CA_BUNDLE); a
variable naming no file is PM_ECONFIG. A handshake reset
before it starts (CURLE_SSL_CONNECT_ERROR) is retried; one the server
refuses (https:// to a plain HTTP port) is not. Driven through
pm_ufs_driver and the `pagemesh` command."""

import json
import os
import random
import shutil
import subprocess

import pytest

from harness import util
from harness.httpserver import HTTPOrigin
from harness.imds import TokenEndpoint
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


def test_tls_to_a_port_that_answers_in_the_clear_is_not_retried(s3,
                                                                 tmp_path):
    # https:// on moto's plain HTTP port: OpenSSL's "wrong version number"
    # comes back on every attempt, so there is only one, and the error
    # says what is wrong
    endpoint = "https://127.0.0.1:%d" % s3.port
    driver = Driver(env_without_ca(tmp_path, **s3.env(endpoint=endpoint)))
    res = driver.with_env(PAGEMESH_ORIGIN_RETRIES=3,
                          PAGEMESH_ORIGIN_RETRY_BASE_MS=2000).error("stat",
                                                                    URI)
    assert res.error == "PM_EUNREACHABLE"
    assert "wrong version number" in res.detail
    assert "1 attempt;" in res.detail and "http://" in res.detail


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


SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"  # not our CA


def test_the_first_ca_variable_wins(driver, front):
    if not os.path.exists(SYSTEM_BUNDLE):
        pytest.skip("no system CA bundle at " + SYSTEM_BUNDLE)
    # S3 reads AWS_CA_BUNDLE first, as botocore
    good_first = driver.with_env(AWS_CA_BUNDLE=front.ca_file,
                                 REQUESTS_CA_BUNDLE=SYSTEM_BUNDLE)
    assert good_first.stat(URI)["size"] == len(BLOB)
    bad_first = driver.with_env(AWS_CA_BUNDLE=SYSTEM_BUNDLE,
                                REQUESTS_CA_BUNDLE=front.ca_file)
    assert "certificate" in bad_first.error("stat", URI).detail
    # then REQUESTS_CA_BUNDLE before CURL_CA_BUNDLE, as requests reads them
    assert driver.with_env(REQUESTS_CA_BUNDLE=front.ca_file,
                           CURL_CA_BUNDLE=SYSTEM_BUNDLE).stat(URI)["size"] \
        == len(BLOB)
    assert driver.with_env(CURL_CA_BUNDLE=front.ca_file,
                           SSL_CERT_FILE=SYSTEM_BUNDLE).stat(URI)["size"] \
        == len(BLOB)


def test_a_hashed_directory_of_cas(driver, front, tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("openssl (c_rehash) is not installed")
    certs = tmp_path / "certs"
    certs.mkdir()
    shutil.copy(front.ca_file, certs / "pm-test-ca.pem")
    subprocess.run(["openssl", "rehash", str(certs)], check=True)
    for var in ("SSL_CERT_DIR", "REQUESTS_CA_BUNDLE"):
        assert driver.with_env(**{var: certs}).stat(URI)["size"] == \
            len(BLOB), var
    res = driver.with_env(SSL_CERT_DIR=front.ca_file).error("stat", URI)
    assert res.error == "PM_ECONFIG" and "not a directory" in res.detail


def test_a_token_endpoint_over_tls(s3, tmp_path):
    """The token trade (here a GCS user's refresh token) goes over https
    with the same CAs as the origin; without them it fails, naming the
    certificate, and no token is sent anywhere."""
    with TokenEndpoint("ya29.over-tls", lambda form: None) as ep, \
            TLSFront(ep.server.server_address[1]) as front:
        adc = tmp_path / "adc.json"
        adc.write_text(json.dumps({
            "type": "authorized_user", "client_id": "c",
            "client_secret": "s", "refresh_token": "r",
            "token_uri": front.url + "/token"}))
        env = env_without_ca(tmp_path, GCS_ENDPOINT_URL=s3.endpoint,
                             GOOGLE_APPLICATION_CREDENTIALS=adc,
                             PAGEMESH_ORIGIN_RETRIES=0)
        uri = "gs://%s/data/blob.bin" % BUCKET
        # moto knows no OAuth: the token was traded if the error is moto's
        trusting = Driver(dict(env, REQUESTS_CA_BUNDLE=front.ca_file))
        res = trusting.error("stat", uri)
        assert len(ep.forms) == 1 and "certificate" not in res.detail
        res = Driver(env).error("stat", uri)
        assert res.error == "PM_EACCES" and "certificate" in res.detail
        assert len(ep.forms) == 1
