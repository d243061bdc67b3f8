"""The GCS origin (ufs/gcs.c) through its XML API with HMAC keys, tested in
GCS's S3-interoperable form against moto's S3 server (which checks the
AWS4-HMAC-SHA256 signatures that GCS's interoperability mode accepts):
gs:// URIs, a custom endpoint (GCS_ENDPOINT_URL, STORAGE_EMULATOR_HOST),
GCS_HMAC_* keys, a bearer token from the environment, from the metadata
server or traded for application default credentials at a token
endpoint. fake-gcs-server
is not used: it serves objects over the XML API but not XML listings
(ListBucketResult), so it could not test list. Driven through
pm_ufs_driver and the `pagemesh` command, behind a counting proxy."""

import base64
import hashlib
import json
import random
import time

import pytest

from harness.cloud_env import blank, clean_env
from harness.imds import (ContainerCredentials, GCEMetadata,
                          GenerateAccessToken, TokenEndpoint)
from harness.keepalive_proxy import OriginProxy
from harness.pagemesh_cli import PagemeshCLI
from harness.s3server import S3Server
from harness.ufs_driver import Driver

BUCKET = "pm-gcs"
MiB = 1024 * 1024
BLOB = random.Random(31).randbytes(2 * MiB + 5)  # 3 pages
TREE = ["dir/a/1", "dir/a/2", "dir/b", "dir/c/d/e"]
MANY = ["many/k%02d" % i for i in range(11)]


@pytest.fixture(scope="module")
def moto():
    with S3Server() as server:
        server.create_bucket(BUCKET)
        objects = {"data/blob.bin": BLOB, "data/empty": b"",
                   "keys/a b+c=d.txt": b"special"}
        objects.update({k: k.encode() for k in TREE + MANY})
        server.put_objects(BUCKET, objects)
        yield server


@pytest.fixture(scope="module")
def proxy(moto):
    with OriginProxy(moto.endpoint) as p:
        yield p


def gcs_env(moto, endpoint, **extra):
    env = {"GCS_ENDPOINT_URL": endpoint,
           "GCS_HMAC_ACCESS_ID": moto.access_key,
           "GCS_HMAC_SECRET": moto.secret_key}
    env.update(extra)
    return env


@pytest.fixture
def driver(moto, proxy, tmp_path):
    proxy.reset_stats()
    proxy.fail_next(0)
    return Driver(clean_env(tmp_path, **gcs_env(moto, proxy.url)))


def gs(key):
    return "gs://%s/%s" % (BUCKET, key)


def test_stat_and_ranged_reads_signed_with_hmac_keys(driver, proxy):
    st = driver.stat(gs("data/blob.bin"))
    assert st["size"] == len(BLOB)
    assert st["version"] == hashlib.md5(BLOB).hexdigest()
    for offset, length in [(0, 1), (MiB - 7, 100000), (len(BLOB) - 3, 9)]:
        assert driver.read(gs("data/blob.bin"), offset, length) == \
            BLOB[offset:offset + length]
    for req in proxy.stats()["recent"]:
        auth = req["headers"]["authorization"]
        assert auth.startswith("AWS4-HMAC-SHA256 Credential=")
        assert "/auto/s3/aws4_request" in auth
        assert req["path"].startswith("/%s/" % BUCKET)  # path-style
        # The stored bytes, always: GCS serves an object stored with
        # Content-Encoding gzip decompressed, whole and Range ignored, to
        # a request that does not accept gzip (other bytes than its size
        # and ETag are of)
        assert req["headers"].get("accept-encoding") == "gzip", req


def test_gcs_scheme_is_the_same_object(driver):
    assert driver.read("gcs://%s/data/blob.bin" % BUCKET, 3, 4) == BLOB[3:7]
    assert driver.list("gcs://%s/dir/" % BUCKET)[0][0] == gs("dir/a/")


def test_listing_and_pagination(driver, proxy):
    assert [(e[0], e[1]) for e in driver.list(gs("dir/"))] == [
        (gs("dir/a/"), True), (gs("dir/b"), False), (gs("dir/c/"), True)]
    assert [e[0] for e in driver.list(gs("dir"), recursive=True)] == \
        [gs(k) for k in TREE]
    paged = driver.with_env(PAGEMESH_GCS_MAX_KEYS=4)
    res = paged.run("list", gs("many/")).check()
    assert len(res.stdout.decode().splitlines()) == len(MANY)
    assert res.requests == 3
    assert driver.read(gs("keys/a b+c=d.txt"), 0, 7) == b"special"


def test_wrong_secret_and_missing_object(driver):
    bad = driver.with_env(GCS_HMAC_SECRET="wrong")
    res = bad.error("stat", gs("data/blob.bin"))
    assert res.error == "PM_EACCES" and "403" in res.detail
    assert gs("data/blob.bin") in res.detail
    res = driver.error("stat", gs("data/nope"))
    assert res.error == "PM_ENOENT" and gs("data/nope") in res.detail


def test_half_an_hmac_pair_is_a_config_error(driver):
    res = driver.with_env(GCS_HMAC_SECRET=None).error("stat", gs("x"))
    assert res.error == "PM_ECONFIG" and "GCS_HMAC_SECRET" in res.detail


def test_bearer_token_is_sent_instead_of_signing(driver, proxy):
    # moto knows no OAuth (it answers 500): only what is sent is checked.
    token = driver.with_env(GCS_HMAC_ACCESS_ID=None, GCS_HMAC_SECRET=None,
                            GOOGLE_OAUTH_ACCESS_TOKEN="ya29.test-token",
                            PAGEMESH_ORIGIN_RETRIES=0)
    token.error("stat", gs("data/blob.bin"))
    headers = proxy.stats()["recent"][-1]["headers"]
    assert headers["authorization"] == "Bearer ya29.test-token"
    assert "x-amz-content-sha256" not in headers
    gcloud = driver.with_env(GCS_HMAC_ACCESS_ID=None, GCS_HMAC_SECRET=None,
                             CLOUDSDK_AUTH_ACCESS_TOKEN="ya29.gcloud")
    gcloud.error("stat", gs("data/blob.bin"))
    assert proxy.stats()["recent"][-1]["headers"]["authorization"] == \
        "Bearer ya29.gcloud"


def test_service_account_token_from_the_metadata_server(driver, proxy):
    """No key and no token given, on a GCE instance: the token of its
    service account comes from the metadata server, once per process (it
    lives an hour), and is sent as the bearer token."""
    # moto knows no OAuth (it answers 500): only what is sent is checked.
    with GCEMetadata("ya29.from-metadata") as md:
        sa = driver.with_env(GCS_HMAC_ACCESS_ID=None, GCS_HMAC_SECRET=None,
                             NO_GCE_CHECK=None, GCE_METADATA_HOST=md.host,
                             PAGEMESH_ORIGIN_RETRIES=0)
        sa.error("list", gs("many/"))
        headers = proxy.stats()["recent"][-1]["headers"]
        assert headers["authorization"] == "Bearer ya29.from-metadata"
        assert "x-amz-content-sha256" not in headers
        assert md.calls == 1
        # An instance without a service account: anonymous requests.
        md.token = None
        sa.error("stat", gs("data/blob.bin"))
        assert "authorization" not in proxy.stats()["recent"][-1]["headers"]
        # NO_GCE_CHECK=true: the metadata server is not asked.
        calls = md.calls
        sa.with_env(NO_GCE_CHECK="true").error("stat", gs("data/blob.bin"))
        assert md.calls == calls


def _sent_token(proxy):
    return proxy.stats()["recent"][-1]["headers"].get("authorization")


def test_application_default_credentials_of_a_user(driver, proxy, tmp_path):
    """gcloud's application_default_credentials.json in ~/.config/gcloud
    (`gcloud auth application-default login`): its refresh token is traded
    at the file's token endpoint for the token sent; a refresh token the
    endpoint refuses is PM_EACCES with its reason, and nothing is sent to
    the origin."""
    def check(form):
        if (form.get("grant_type") != "refresh_token" or
                form.get("client_id") != "123.apps" or
                form.get("client_secret") != "s3cret"):
            return "invalid_client"
        return None if form.get("refresh_token") == "1//good" \
            else "invalid_grant"

    gcloud = tmp_path / ".config" / "gcloud"
    gcloud.mkdir(parents=True)
    adc_file = gcloud / "application_default_credentials.json"
    with TokenEndpoint("ya29.of-a-user", check) as ep:
        adc = {"type": "authorized_user", "client_id": "123.apps",
               "client_secret": "s3cret", "refresh_token": "1//good",
               "quota_project_id": "p", "token_uri": ep.url}
        adc_file.write_text(json.dumps(adc))
        # moto knows no OAuth (it answers 500): only what is sent is checked.
        user = driver.with_env(GCS_HMAC_ACCESS_ID=None, GCS_HMAC_SECRET=None,
                               PAGEMESH_ORIGIN_RETRIES=0)
        user.error("stat", gs("data/blob.bin"))
        assert _sent_token(proxy) == "Bearer ya29.of-a-user"
        assert len(ep.forms) == 1
        adc["refresh_token"] = "1//revoked"
        adc_file.write_text(json.dumps(adc))
        sent = proxy.stats()["total_requests"]
        res = user.error("stat", gs("data/blob.bin"))
        assert res.error == "PM_EACCES"
        assert "invalid_grant" in res.detail and str(adc_file) in res.detail
        assert "1//revoked" not in res.detail and "s3cret" not in res.detail
        assert proxy.stats()["total_requests"] == sent


def _jwt(assertion):
    def unb64(text):
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    header, claims, signature = assertion.split(".")
    return (json.loads(unb64(header)), json.loads(unb64(claims)),
            (header + "." + claims).encode(), unb64(signature))


def test_application_default_credentials_of_a_service_account(
        driver, proxy, tmp_path):
    """A service account's key file in GOOGLE_APPLICATION_CREDENTIALS: a
    JWT for the read-only storage scope, signed RS256 with its private
    key, is traded for the token sent. The stand-in verifies the signature
    with the public key; signed with another key, the grant is refused."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    account = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    seen = []

    def check(form):
        if form.get("grant_type") != \
                "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return "unsupported_grant_type"
        header, claims, signed, signature = _jwt(form["assertion"])
        try:
            account.public_key().verify(signature, signed,
                                        padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return "invalid_grant"
        seen.append((header, claims))
        return None

    def key_file(key):
        pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        path = tmp_path / "reader.json"
        path.write_text(json.dumps({
            "type": "service_account", "project_id": "p",
            "private_key_id": "k1", "private_key": pem,
            "client_email": "reader@p.iam.gserviceaccount.com",
            "client_id": "1", "token_uri": ep.url}))
        return path

    with TokenEndpoint("ya29.of-a-service-account", check) as ep:
        sa = driver.with_env(GCS_HMAC_ACCESS_ID=None, GCS_HMAC_SECRET=None,
                             GOOGLE_APPLICATION_CREDENTIALS=key_file(account),
                             PAGEMESH_ORIGIN_RETRIES=0)
        sa.error("list", gs("many/"))
        assert _sent_token(proxy) == "Bearer ya29.of-a-service-account"
        assert len(seen) == 1
        header, claims = seen[0]
        assert header == {"alg": "RS256", "typ": "JWT", "kid": "k1"}
        assert claims["iss"] == "reader@p.iam.gserviceaccount.com"
        assert claims["aud"] == ep.url
        assert claims["scope"] == \
            "https://www.googleapis.com/auth/devstorage.read_only"
        assert claims["exp"] - claims["iat"] == 3600
        assert abs(claims["iat"] - time.time()) < 120
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_file(other)
        res = sa.error("stat", gs("data/blob.bin"))
        assert res.error == "PM_EACCES" and "invalid_grant" in res.detail
        assert len(seen) == 1


def test_external_account_workload_identity_federation(driver, proxy,
                                                        tmp_path):
    """external_account (workload identity federation): the subject token
    of the identity provider (a projected service account token in a
    file, or the JSON answer of a URL with its header) is traded at
    Google's STS for the storage scope, and, with an impersonation URL,
    that token asks IAM for the service account's token, which is sent;
    refusals are PM_EACCES with their reason; AWS-sourced files are
    refused at load."""
    audience = ("//iam.googleapis.com/projects/1/locations/global/"
                "workloadIdentityPools/onprem/providers/k8s")
    subject = tmp_path / "oidc-token"
    subject.write_text("eyJhbGciOi.k8s-sa\n")
    storage = "https://www.googleapis.com/auth/devstorage.read_only"

    def check(form):
        if (form.get("grant_type") !=
                "urn:ietf:params:oauth:grant-type:token-exchange" or
                form.get("audience") != audience or
                form.get("requested_token_type") !=
                "urn:ietf:params:oauth:token-type:access_token" or
                form.get("subject_token_type") !=
                "urn:ietf:params:oauth:token-type:jwt"):
            return "invalid_request"
        return None if form.get("subject_token") in (
            "eyJhbGciOi.k8s-sa", "eyJ.from-a-url") else "invalid_grant"

    cred_file = tmp_path / "external.json"
    with TokenEndpoint("ya29.federated", check, path="/v1/token") as sts, \
            GenerateAccessToken("ya29.impersonated", "ya29.federated") as iam:
        cred = {"type": "external_account", "audience": audience,
                "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
                "token_url": sts.url,
                "credential_source": {"file": str(subject)}}
        cred_file.write_text(json.dumps(cred))
        ext = driver.with_env(GCS_HMAC_ACCESS_ID=None, GCS_HMAC_SECRET=None,
                              GOOGLE_APPLICATION_CREDENTIALS=str(cred_file),
                              PAGEMESH_ORIGIN_RETRIES=0)
        ext.error("stat", gs("data/blob.bin"))
        assert _sent_token(proxy) == "Bearer ya29.federated"
        assert sts.forms[-1]["scope"] == storage
        # Impersonating a service account: its token is the one sent.
        cred["service_account_impersonation_url"] = iam.url
        cred_file.write_text(json.dumps(cred))
        ext.error("list", gs("many/"))
        assert _sent_token(proxy) == "Bearer ya29.impersonated"
        assert sts.forms[-1]["scope"] == \
            "https://www.googleapis.com/auth/cloud-platform"
        auth, body = iam.requests[-1]
        assert auth == "Bearer ya29.federated"
        assert body == {"scope": [storage], "lifetime": "3600s"}
        # IAM refuses: its message is the reason, nothing reaches GCS.
        iam.bearer = "another"
        sent = proxy.stats()["total_requests"]
        res = ext.error("stat", gs("data/blob.bin"))
        assert res.error == "PM_EACCES" and "HTTP 403" in res.detail
        assert "getAccessToken" in res.detail
        assert proxy.stats()["total_requests"] == sent
        # The subject token as JSON from a URL with its one header.
        with ContainerCredentials({"AccessKeyId": "-", "SecretAccessKey": "-",
                                   "Token": "eyJ.from-a-url"},
                                  token="Bearer idp") as idp:
            del cred["service_account_impersonation_url"]
            cred["credential_source"] = {
                "url": idp.url, "headers": {"Authorization": "Bearer idp"},
                "format": {"type": "json",
                           "subject_token_field_name": "Token"}}
            cred_file.write_text(json.dumps(cred))
            ext.error("stat", gs("data/blob.bin"))
            assert _sent_token(proxy) == "Bearer ya29.federated"
            assert sts.forms[-1]["subject_token"] == "eyJ.from-a-url"
            assert idp.authorizations == ["Bearer idp"]
        # A subject token STS refuses.
        cred["credential_source"] = {"file": str(subject)}
        cred_file.write_text(json.dumps(cred))
        subject.write_text("eyJ.expired")
        res = ext.error("stat", gs("data/blob.bin"))
        assert res.error == "PM_EACCES" and "invalid_grant" in res.detail
        assert "eyJ.expired" not in res.detail
    # AWS-sourced: refused when the file is read.
    cred["credential_source"] = {"environment_id": "aws1",
                                 "region_url": "http://169.254.169.254"}
    cred_file.write_text(json.dumps(cred))
    res = ext.error("stat", gs("data/blob.bin"))
    assert res.error == "PM_ECONFIG" and "AWS-sourced" in res.detail


def test_storage_emulator_host_without_scheme(driver, proxy):
    emu = driver.with_env(GCS_ENDPOINT_URL=None,
                          STORAGE_EMULATOR_HOST="127.0.0.1:%d" % proxy.port)
    assert emu.read(gs("data/blob.bin"), 0, 4) == BLOB[:4]


def test_changed_object_between_stat_and_read(moto, driver):
    moto.put_object(BUCKET, "changing", b"one" * 1000)
    st = driver.stat(gs("changing"))
    moto.put_object(BUCKET, "changing", b"two" * 1000)
    res = driver.error("read", gs("changing"), 0, 3, st["version"],
                       st["size"])
    assert res.error == "PM_ECHANGED"


def test_retries_and_connection_reuse(driver, proxy):
    proxy.fail_next(1, status=503)
    assert driver.read(gs("data/blob.bin"), 0, 10) == BLOB[:10]
    proxy.reset_stats()
    assert driver.run("hammer", gs("data/blob.bin"), 4, 10).check() \
        .stdout == b"ok\n"
    assert proxy.stats()["connections"] <= 8


# ---- the pagemesh command -------------------------------------------------


@pytest.fixture
def cli(build_dir, tmp_path, moto, proxy):
    proxy.reset_stats()
    return PagemeshCLI(build_dir, str(tmp_path / "cache"),
                       blank(**gcs_env(moto, proxy.url)))


def test_cli_cat_ls_stat_and_second_cat_costs_nothing(cli, proxy):
    assert cli.cat(gs("data/blob.bin")) == BLOB
    assert proxy.stats()["requests"] == {"HEAD": 1, "GET": 3}
    proxy.reset_stats()
    assert cli.cat(gs("data/blob.bin")) == BLOB
    assert proxy.stats()["total_requests"] == 0
    assert cli.json("stat", gs("data/blob.bin"), "--json")["size"] == \
        len(BLOB)
    names = [e["uri"] for e in cli.json("ls", gs("data/"), "--json")]
    assert names == [gs("data/blob.bin"), gs("data/empty")]
