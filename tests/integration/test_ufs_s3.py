"""The S3 origin connector (ufs/s3.c) against a real S3-compatible server
that checks SigV4 signatures (moto with authentication on), driven through
pm_ufs_driver. One server per module; an origin_proxy in front of it counts
requests and injects faults."""

import json
import os
import random
import time

import pytest

from harness import util
from harness.imds import IMDS, ContainerCredentials, SSOPortal, WebIdentitySTS
from harness.s3server import S3Server
from harness.ufs_driver import Driver
from origin_proxy import OriginProxy

BUCKET = "pm-test"
BLOB = random.Random(7).randbytes(1024 * 1024 + 123)
SPECIAL_KEYS = [
    "keys/with space.txt",
    "keys/a+b=c.txt",
    "keys/ünïcødé-日本.txt",
    "keys/100%.txt",
    "keys/what?#frag.txt",
    "keys/a@b:c;(d)!$&'*,~.txt",
]
TREE = ["dir/a/1", "dir/a/2", "dir/b", "dir/c/d/e"]
MANY = ["many/k%03d" % i for i in range(25)]


@pytest.fixture(scope="module")
def s3():
    with S3Server() as server:
        server.create_bucket(BUCKET)
        objects = {"data/blob.bin": BLOB, "data/empty": b""}
        objects.update({k: k.encode("utf-8") * 3 for k in SPECIAL_KEYS})
        objects.update({k: k.encode() for k in TREE + MANY})
        server.put_objects(BUCKET, objects)
        yield server


@pytest.fixture(scope="module")
def proxy(s3):
    with OriginProxy(s3.endpoint) as p:
        yield p


@pytest.fixture
def driver(s3, proxy, tmp_path):
    """The driver pointed at moto through the proxy, counters zeroed."""
    proxy.reset_stats()
    proxy.fail_next(0)
    return Driver(util.clean_env(tmp_path, **s3.env(endpoint=proxy.url)))


def uri(key):
    return "s3://%s/%s" % (BUCKET, key)


def test_stat_gives_size_etag_and_mtime(s3, driver):
    head = s3.client().head_object(Bucket=BUCKET, Key="data/blob.bin")
    st = driver.stat(uri("data/blob.bin"))
    assert st["size"] == len(BLOB)
    assert st["version"] == head["ETag"].strip('"')
    assert st["mtime_ns"] == int(head["LastModified"].timestamp()) * 10**9


@pytest.mark.parametrize("offset,length", [
    (0, 1), (0, 4096), (1, 4096), (777_777, 65_536), (len(BLOB) - 5, 5),
    (len(BLOB) - 5, 100), (1024 * 1024, 1024 * 1024), (0, len(BLOB)),
])
def test_ranged_reads_return_exact_bytes(driver, proxy, offset, length):
    got = driver.read(uri("data/blob.bin"), offset, length)
    assert got == BLOB[offset:offset + length]
    gets = [r for r in proxy.stats()["recent"] if r["method"] == "GET"]
    assert gets[-1]["headers"]["range"] == "bytes=%d-%d" % (
        offset, min(offset + length, len(BLOB)) - 1)
    assert gets[-1]["headers"]["if-match"].startswith('"')


def test_read_past_the_end_and_empty_object(driver):
    assert driver.read(uri("data/blob.bin"), len(BLOB), 10) == b""
    assert driver.stat(uri("data/empty"))["size"] == 0
    assert driver.read(uri("data/empty"), 0, 10) == b""


def test_requests_are_signed_with_content_hash(driver, proxy):
    driver.read(uri("data/blob.bin"), 0, 10)
    for req in proxy.stats()["recent"]:
        auth = req["headers"]["authorization"]
        assert auth.startswith("AWS4-HMAC-SHA256 Credential=")
        assert "x-amz-content-sha256" in auth
        assert "/us-east-1/s3/aws4_request" in auth


def test_wrong_secret_is_eacces_with_s3_code(driver):
    bad = driver.with_env(AWS_SECRET_ACCESS_KEY="not-the-secret")
    res = bad.error("stat", uri("data/blob.bin"))
    assert res.error == "PM_EACCES" and "403" in res.detail
    res = bad.error("read", uri("data/blob.bin"), 0, 10, "etag", len(BLOB))
    assert res.error == "PM_EACCES"
    assert "SignatureDoesNotMatch" in res.detail
    res = bad.error("list", uri("dir/"))
    assert res.error == "PM_EACCES"
    assert "SignatureDoesNotMatch" in res.detail


def test_anonymous_is_refused(driver):
    anon = driver.with_env(AWS_ACCESS_KEY_ID=None, AWS_SECRET_ACCESS_KEY=None)
    res = anon.error("stat", uri("data/blob.bin"))
    assert res.error == "PM_EACCES"


def test_half_a_key_pair_is_a_config_error(driver):
    half = driver.with_env(AWS_SECRET_ACCESS_KEY=None)
    res = half.error("stat", uri("data/blob.bin"))
    assert res.error == "PM_ECONFIG" and "AWS_SECRET_ACCESS_KEY" in res.detail


@pytest.mark.parametrize("key", SPECIAL_KEYS)
def test_special_keys_round_trip(driver, key):
    data = key.encode("utf-8") * 3
    st = driver.stat(uri(key))
    assert st["size"] == len(data)
    assert driver.read(uri(key), 1, len(data)) == data[1:]
    listed = [e[0] for e in driver.list(uri("keys/"))]
    assert uri(key) in listed
    assert [e[0] for e in driver.list(uri(key))] == [uri(key)]


def test_listing_with_delimiter(driver):
    entries = driver.list(uri("dir/"))
    assert [(e[0], e[1]) for e in entries] == [
        (uri("dir/a/"), True), (uri("dir/b"), False), (uri("dir/c/"), True)]
    b = entries[1]
    assert b[2] == len(b"dir/b") and b[3]
    assert driver.list(uri("dir")) == entries  # trailing '/' implied


def test_recursive_listing(driver):
    assert [e[0] for e in driver.list(uri("dir/"), recursive=True)] == \
        [uri(k) for k in TREE]


def test_bucket_root_listing(driver):
    top = [e[0] for e in driver.list("s3://%s" % BUCKET)]
    assert top == [uri("data/"), uri("dir/"), uri("keys/"), uri("many/")]


def test_pagination_follows_continuation_tokens(driver, proxy):
    paged = driver.with_env(PAGEMESH_S3_MAX_KEYS=7)
    res = paged.run("list", uri("many/"))
    res.check()
    assert len(res.stdout.decode().splitlines()) == len(MANY)
    assert res.requests == 4  # ceil(25 / 7) pages
    queries = [r["path"] for r in proxy.stats()["recent"]]
    assert sum("continuation-token=" in q for q in queries) == 3
    entries = paged.list(uri(""), recursive=True)
    assert len(entries) == 2 + len(SPECIAL_KEYS) + len(TREE) + len(MANY)


def test_bad_max_keys_is_a_config_error(driver):
    res = driver.with_env(PAGEMESH_S3_MAX_KEYS=5000).error("stat", uri("x"))
    assert res.error == "PM_ECONFIG"


def test_missing_object_prefix_and_bucket(driver):
    res = driver.error("stat", uri("data/nope"))
    assert res.error == "PM_ENOENT" and uri("data/nope") in res.detail
    res = driver.error("list", uri("nothing/here/"))
    assert res.error == "PM_ENOENT"
    res = driver.error("list", "s3://no-such-bucket/")
    assert res.error == "PM_ENOENT" and "NoSuchBucket" in res.detail
    res = driver.error("stat", "s3://no-such-bucket/key")
    assert res.error == "PM_ENOENT"


def test_bad_uris(driver):
    assert driver.error("stat", "s3://x/k").error == "PM_EBADURI"
    assert driver.error("stat", "s3:///k").error == "PM_EBADURI"
    assert driver.error("stat", uri("")).error == "PM_ENOENT"


def test_unreachable_endpoint(driver):
    dead = driver.with_env(
        AWS_ENDPOINT_URL="http://127.0.0.1:%d" % util.free_port())
    res = dead.error("stat", uri("data/blob.bin"))
    assert res.error == "PM_EUNREACHABLE" and "127.0.0.1" in res.detail


def test_retries_on_503_then_success(driver, proxy):
    proxy.fail_next(2, status=503)
    assert driver.read(uri("data/blob.bin"), 10, 20) == BLOB[10:30]
    stats = proxy.stats()
    assert stats["faults"] == 2
    assert stats["total_requests"] == 4  # HEAD x3 (2 refused), GET
    st = driver.stat(uri("data/blob.bin"))
    proxy.reset_stats()
    proxy.fail_next(1, status=500)  # now the ranged GET is refused once
    assert driver.read(uri("data/blob.bin"), 4000, 3000, st["version"],
                       st["size"]) == BLOB[4000:7000]
    assert proxy.stats()["requests"] == {"GET": 2}


def test_retry_after_is_honoured(driver, proxy):
    """A 503 SlowDown (or a 429) saying Retry-After: 1 is retried after a
    second, not after the few milliseconds of the driver's backoff."""
    proxy.fail_next(1, status=503, retry_after=1)
    start = time.monotonic()
    assert driver.stat(uri("data/blob.bin"))["size"] == len(BLOB)
    assert time.monotonic() - start >= 0.95
    assert proxy.stats()["faults"] == 1
    proxy.fail_next(1, status=429, retry_after=1)
    start = time.monotonic()
    assert driver.read(uri("data/blob.bin"), 0, 4) == BLOB[:4]
    assert time.monotonic() - start >= 0.95
    proxy.fail_next(0)


@pytest.mark.parametrize("refusal", [301, 400])
def test_a_bucket_in_another_region_is_found(driver, proxy, refusal):
    """The bucket answers, as S3 does, that requests signed for us-east-1
    belong to eu-west-3 (a 301 with x-amz-bucket-region, or a 400
    AuthorizationHeaderMalformed naming it in its body): the connector
    learns the region from the refusal and signs every later request of
    the process for it."""
    proxy.bucket_region = "eu-west-3"
    proxy.region_refusal = refusal
    try:
        listed = driver.with_env(PAGEMESH_S3_MAX_KEYS=10).list(uri("many/"))
        assert len(listed) == len(MANY)
        assert proxy.stats()["faults"] == 1  # one refusal, then 3 pages
        auth = proxy.stats()["recent"][-1]["headers"]["authorization"]
        assert "/eu-west-3/s3/aws4_request" in auth
        assert driver.read(uri("data/blob.bin"), 0, 8) == BLOB[:8]
        assert proxy.stats()["faults"] == 2  # a new process learns again
    finally:
        proxy.bucket_region = None
        proxy.region_refusal = 301


def test_retries_exhausted_is_eorigin(driver, proxy):
    proxy.fail_next(100, status=500)
    res = driver.with_env(PAGEMESH_ORIGIN_RETRIES=2).error(
        "stat", uri("data/blob.bin"))
    assert res.error == "PM_EORIGIN"
    assert "500" in res.detail and "3 attempts" in res.detail
    assert proxy.stats()["faults"] == 3
    proxy.fail_next(0)


def test_changed_object_between_stat_and_read(s3, driver):
    key = "changing/obj"
    s3.put_object(BUCKET, key, b"version one" * 100)
    st = driver.stat(uri(key))
    s3.put_object(BUCKET, key, b"version two" * 100)
    res = driver.error("read", uri(key), 0, 10, st["version"], st["size"])
    assert res.error == "PM_ECHANGED" and "412" in res.detail
    fresh = driver.stat(uri(key))
    assert fresh["version"] != st["version"]
    assert driver.read(uri(key), 0, 11) == b"version two"


def test_virtual_host_addressing(s3, driver, proxy):
    # *.localhost resolves to 127.0.0.1 in curl; moto serves the bucket
    # from the Host name.
    virtual = driver.with_env(
        AWS_ENDPOINT_URL="http://localhost:%d" % proxy.port,
        AWS_S3_ADDRESSING_STYLE="virtual")
    assert virtual.read(uri("data/blob.bin"), 5, 10) == BLOB[5:15]
    assert [e[0] for e in virtual.list(uri("dir/"))][0] == uri("dir/a/")
    hosts = {r["headers"]["host"] for r in proxy.stats()["recent"]}
    assert hosts == {"%s.localhost:%d" % (BUCKET, proxy.port)}
    paths = [r["path"] for r in proxy.stats()["recent"]]
    assert paths[0] == "/data/blob.bin"


def test_session_token_is_sent_and_checked(s3, driver, proxy):
    iam = s3.client("iam")
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": "*"},
        "Action": "sts:AssumeRole"}]}
    role = iam.create_role(RoleName="pm-reader",
                           AssumeRolePolicyDocument=json.dumps(trust))
    iam.put_role_policy(RoleName="pm-reader", PolicyName="all",
                        PolicyDocument=json.dumps({
                            "Version": "2012-10-17", "Statement": [{
                                "Effect": "Allow", "Action": "*",
                                "Resource": "*"}]}))
    creds = s3.client("sts").assume_role(
        RoleArn=role["Role"]["Arn"], RoleSessionName="pm-test")["Credentials"]
    temp = driver.with_env(AWS_ACCESS_KEY_ID=creds["AccessKeyId"],
                           AWS_SECRET_ACCESS_KEY=creds["SecretAccessKey"],
                           AWS_SESSION_TOKEN=creds["SessionToken"])
    assert temp.read(uri("data/blob.bin"), 0, 8) == BLOB[:8]
    headers = proxy.stats()["recent"][-1]["headers"]
    assert headers["x-amz-security-token"] == creds["SessionToken"]
    assert "x-amz-security-token" in headers["authorization"]
    assert temp.with_env(AWS_SESSION_TOKEN=None).error(
        "stat", uri("data/blob.bin")).error == "PM_EACCES"


def _write(path, text):
    path.write_text(text)
    return str(path)


def test_credentials_file_profile(s3, driver, tmp_path):
    creds = _write(tmp_path / "credentials", (
        "\ufeff# test credentials\n"
        "[default]\naws_access_key_id = WRONG\naws_secret_access_key = x\n\n"
        "; the profile under test, CRLF lines and stray spaces\r\n"
        "[ pm ]\r\naws_access_key_id = %s  \r\n"
        "AWS_Secret_Access_Key=%s\r\n" % (s3.access_key, s3.secret_key)))
    from_file = driver.with_env(AWS_ACCESS_KEY_ID=None,
                                AWS_SECRET_ACCESS_KEY=None,
                                AWS_SHARED_CREDENTIALS_FILE=creds)
    profile = from_file.with_env(AWS_PROFILE="pm")
    assert profile.read(uri("data/blob.bin"), 0, 4) == BLOB[:4]
    # The default profile has wrong keys; environment keys win over it.
    assert from_file.error("stat", uri("data/blob.bin")).error == "PM_EACCES"
    env_wins = driver.with_env(AWS_SHARED_CREDENTIALS_FILE=creds)
    assert env_wins.read(uri("data/blob.bin"), 0, 4) == BLOB[:4]
    missing = from_file.with_env(AWS_PROFILE="nope")
    res = missing.error("stat", uri("data/blob.bin"))
    assert res.error == "PM_ECONFIG" and "nope" in res.detail


def test_a_tilde_path_without_home_is_said(driver):
    """AWS_SHARED_CREDENTIALS_FILE=~/... with HOME unset names no file: the
    connector says so instead of going on silently without it."""
    res = _no_keys(driver, HOME=None,
                   AWS_SHARED_CREDENTIALS_FILE="~/.aws/creds").error(
        "stat", uri("data/blob.bin"))
    assert res.error == "PM_EACCES"  # anonymous, so refused
    assert "AWS_SHARED_CREDENTIALS_FILE=~/.aws/creds: HOME is not set" in \
        res.stderr


def test_config_file_profile_region_and_keys(s3, driver, proxy, tmp_path):
    config = _write(tmp_path / "config", (
        "[profile cfg]\nregion = eu-west-3\ns3 =\n  addressing_style = path\n"
        "aws_access_key_id = %s\naws_secret_access_key = %s\n"
        % (s3.access_key, s3.secret_key)))
    cfg = driver.with_env(AWS_ACCESS_KEY_ID=None, AWS_SECRET_ACCESS_KEY=None,
                          AWS_REGION=None, AWS_PROFILE="cfg",
                          AWS_CONFIG_FILE=config,
                          AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
    assert cfg.read(uri("data/blob.bin"), 0, 4) == BLOB[:4]
    auth = proxy.stats()["recent"][-1]["headers"]["authorization"]
    assert "/eu-west-3/s3/aws4_request" in auth


def _role(s3, name):
    """A role in moto's IAM that anyone may assume and that may do all;
    its ARN."""
    iam = s3.client("iam")
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": "*"},
        "Action": "sts:AssumeRole"}]}
    role = iam.create_role(RoleName=name,
                           AssumeRolePolicyDocument=json.dumps(trust))
    iam.put_role_policy(RoleName=name, PolicyName="all",
                        PolicyDocument=json.dumps({
                            "Version": "2012-10-17", "Statement": [{
                                "Effect": "Allow", "Action": "*",
                                "Resource": "*"}]}))
    return role["Role"]["Arn"]


def _temporary_keys(s3, name):
    """Keys of an assumed role (with a session token) that moto honours."""
    return s3.client("sts").assume_role(
        RoleArn=_role(s3, name), RoleSessionName=name)["Credentials"]


def _no_keys(driver, **env):
    return driver.with_env(AWS_ACCESS_KEY_ID=None, AWS_SECRET_ACCESS_KEY=None,
                           **env)


def test_credential_process_of_a_profile(s3, driver, proxy, tmp_path):
    creds = _temporary_keys(s3, "pm-process")
    runs = tmp_path / "runs"
    script = _write(tmp_path / "keys.sh", (
        "echo run >> %s\n"
        "printf '%%s' '%s'\n" % (runs, json.dumps({
            "Version": 1, "AccessKeyId": creds["AccessKeyId"],
            "SecretAccessKey": creds["SecretAccessKey"],
            "SessionToken": creds["SessionToken"],
            "Expiration": "2099-01-01T00:00:00+00:00"}))))
    config = _write(tmp_path / "config", (
        "[profile proc]\ncredential_process = sh %s --quiet\n" % script))
    proc = _no_keys(driver, AWS_PROFILE="proc", AWS_CONFIG_FILE=config)
    # A listing of many/ in pages of 10: three signed requests, one run.
    listed = proc.with_env(PAGEMESH_S3_MAX_KEYS=10).list(uri("many/"))
    assert len(listed) == len(MANY)
    assert runs.read_text().count("run") == 1
    headers = proxy.stats()["recent"][-1]["headers"]
    assert headers["x-amz-security-token"] == creds["SessionToken"]
    failing = _write(tmp_path / "fail-config", (
        "[profile proc]\ncredential_process = "
        "sh -c 'echo token expired >&2; exit 2'\n"))
    res = proc.with_env(AWS_CONFIG_FILE=failing).error(
        "stat", uri("data/blob.bin"))
    assert res.error == "PM_EACCES"
    assert "credential_process" in res.detail and "exit status 2" in \
        res.detail, res.detail
    assert "token expired" in res.stderr  # the process's own stderr


def test_web_identity_of_a_pod(s3, driver, proxy, tmp_path):
    """AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN, as EKS sets them for a
    pod's service account: the keys come from STS AssumeRoleWithWebIdentity
    (a stand-in at AWS_ENDPOINT_URL_STS handing out keys moto honours),
    once per process, with the token read from the file."""
    creds = _temporary_keys(s3, "pm-irsa")
    token = _write(tmp_path / "token", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln\n")
    arn = "arn:aws:iam::123456789012:role/pm-irsa"
    with WebIdentitySTS(creds) as sts:
        irsa = _no_keys(driver, AWS_WEB_IDENTITY_TOKEN_FILE=token,
                        AWS_ROLE_ARN=arn, AWS_ROLE_SESSION_NAME="pm-pod",
                        AWS_ENDPOINT_URL_STS=sts.endpoint)
        listed = irsa.with_env(PAGEMESH_S3_MAX_KEYS=10).list(uri("many/"))
        assert len(listed) == len(MANY)
        assert sts.queries == [{
            "Action": "AssumeRoleWithWebIdentity", "Version": "2011-06-15",
            "DurationSeconds": "3600", "RoleArn": arn,
            "RoleSessionName": "pm-pod",
            "WebIdentityToken": "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"}]
        headers = proxy.stats()["recent"][-1]["headers"]
        assert headers["x-amz-security-token"] == creds["SessionToken"]
        missing = irsa.with_env(
            AWS_WEB_IDENTITY_TOKEN_FILE=str(tmp_path / "no"))
        res = missing.error("stat", uri("data/blob.bin"))
        assert res.error == "PM_EACCES" and "web identity" in res.detail
    res = _no_keys(driver, AWS_ROLE_ARN=arn).error("stat",
                                                   uri("data/blob.bin"))
    assert res.error == "PM_ECONFIG" and \
        "AWS_WEB_IDENTITY_TOKEN_FILE" in res.detail


def test_profile_that_assumes_a_role(s3, driver, proxy, tmp_path):
    """A profile with role_arn and source_profile (cross-account access, as
    the AWS CLI reads it): the role's keys come from STS AssumeRole (moto's,
    with authentication on), asked once per process with the source
    profile's keys and the profile's external_id and session name; objects
    are then read with the role's keys. A role whose source is a role
    itself takes two AssumeRole calls. STS refusing is PM_EACCES with its
    reason."""
    from urllib.parse import parse_qs
    reader, data = _role(s3, "pm-xacct-reader"), _role(s3, "pm-xacct-data")
    creds = _write(tmp_path / "credentials", (
        "[base]\naws_access_key_id = %s\naws_secret_access_key = %s\n" % (
            s3.access_key, s3.secret_key)))
    config = _write(tmp_path / "config", (
        "[profile reader]\nrole_arn = %s\nsource_profile = base\n"
        "external_id = ext-42\nrole_session_name = pm-job\n"
        "[profile chained]\nrole_arn = %s\nsource_profile = reader\n"
        "[profile badbase]\nrole_arn = %s\nsource_profile = wrong\n"
        "[profile wrong]\naws_access_key_id = AKIAWRONG\n"
        "aws_secret_access_key = nope\n" % (reader, data, reader)))
    role = _no_keys(driver, AWS_PROFILE="reader", AWS_CONFIG_FILE=config,
                    AWS_SHARED_CREDENTIALS_FILE=creds)

    def sts_forms():
        return [{k: v[-1] for k, v in parse_qs(r["body"]).items()}
                for r in proxy.stats()["recent"]
                if r["method"] == "POST" and "Action=AssumeRole" in
                r.get("body", "")]

    listed = role.with_env(PAGEMESH_S3_MAX_KEYS=10).list(uri("many/"))
    assert len(listed) == len(MANY)
    forms = sts_forms()
    assert forms == [{"Action": "AssumeRole", "Version": "2011-06-15",
                      "DurationSeconds": "3600", "RoleArn": reader,
                      "RoleSessionName": "pm-job", "ExternalId": "ext-42"}]
    sts_call = [r for r in proxy.stats()["recent"]
                if r["method"] == "POST"][-1]
    assert "Credential=%s/" % s3.access_key in \
        sts_call["headers"]["authorization"]
    last = proxy.stats()["recent"][-1]["headers"]
    assert last["x-amz-security-token"]
    assert s3.access_key not in last["authorization"]
    proxy.reset_stats()
    chained = role.with_env(AWS_PROFILE="chained")
    assert chained.read(uri("data/blob.bin"), 5, 10) == BLOB[5:15]
    assert [f["RoleArn"] for f in sts_forms()] == [reader, data]
    res = role.with_env(AWS_PROFILE="badbase").error("stat",
                                                     uri("data/blob.bin"))
    assert res.error == "PM_EACCES" and "AssumeRole" in res.detail
    assert "nope" not in res.detail


def test_profile_that_signs_in_with_sso(s3, driver, proxy, tmp_path):
    """IAM Identity Center: the access token `aws sso login` cached for the
    profile's session (~/.aws/sso/cache/SHA1(session).json) is traded at
    the portal (AWS_ENDPOINT_URL_SSO) for the role's keys; an expired,
    missing or refused login is PM_EACCES with the way out."""
    import hashlib
    from datetime import datetime, timedelta, timezone
    creds = _temporary_keys(s3, "pm-sso")
    config = _write(tmp_path / "config", (
        "[profile dev]\nsso_session = corp\nsso_account_id = 111122223333\n"
        "sso_role_name = reader\n"
        "[sso-session corp]\nsso_start_url = https://corp.awsapps.com/start"
        "\nsso_region = eu-west-1\n"))
    cache = tmp_path / ".aws" / "sso" / "cache"
    cache.mkdir(parents=True)
    login = cache / (hashlib.sha1(b"corp").hexdigest() + ".json")

    def cached(token, hours):
        at = datetime.now(timezone.utc) + timedelta(hours=hours)
        login.write_text(json.dumps({
            "startUrl": "https://corp.awsapps.com/start",
            "region": "eu-west-1", "accessToken": token,
            "expiresAt": at.strftime("%Y-%m-%dT%H:%M:%SZ")}))

    with SSOPortal(creds, "sso-access-token") as portal:
        dev = _no_keys(driver, AWS_PROFILE="dev", AWS_CONFIG_FILE=config,
                       HOME=str(tmp_path),
                       AWS_ENDPOINT_URL_SSO=portal.endpoint)
        cached("sso-access-token", 8)
        assert dev.read(uri("data/blob.bin"), 0, 8) == BLOB[:8]
        headers = proxy.stats()["recent"][-1]["headers"]
        assert headers["x-amz-security-token"] == creds["SessionToken"]
        assert portal.calls == [("sso-access-token", {
            "role_name": "reader", "account_id": "111122223333"})]
        cached("sso-access-token", -1)  # expired: not even sent
        res = dev.error("stat", uri("data/blob.bin"))
        assert res.error == "PM_EACCES" and "expired" in res.detail
        assert "aws sso login --profile dev" in res.detail
        assert len(portal.calls) == 1
        cached("revoked-token", 8)
        res = dev.error("stat", uri("data/blob.bin"))
        assert res.error == "PM_EACCES" and "HTTP 401" in res.detail
        assert "revoked-token" not in res.detail
        login.unlink()
        res = dev.error("stat", uri("data/blob.bin"))
        assert res.error == "PM_EACCES" and "no SSO login cached" in res.detail


def test_instance_role_from_the_metadata_service(s3, driver, proxy):
    creds = _temporary_keys(s3, "pm-instance")
    keys = {"AccessKeyId": creds["AccessKeyId"],
            "SecretAccessKey": creds["SecretAccessKey"],
            "Token": creds["SessionToken"]}
    with IMDS(keys) as imds:
        inst = _no_keys(driver, AWS_EC2_METADATA_DISABLED=None,
                        AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.endpoint + "/")
        assert inst.read(uri("data/blob.bin"), 0, 8) == BLOB[:8]
        headers = proxy.stats()["recent"][-1]["headers"]
        assert headers["x-amz-security-token"] == creds["SessionToken"]
        listed = inst.with_env(PAGEMESH_S3_MAX_KEYS=10).list(uri("many/"))
        assert len(listed) == len(MANY)
        role = "GET /latest/meta-data/iam/security-credentials/pm-instance-role"
        assert imds.calls[role] == 2  # once per process, not per request
        assert imds.calls["PUT /latest/api/token"] == 2
        # Disabled: not asked, and the request goes out anonymous.
        off = inst.with_env(AWS_EC2_METADATA_DISABLED="true")
        assert off.error("stat", uri("data/blob.bin")).error == "PM_EACCES"
        assert imds.calls[role] == 2
        # An instance without a role: anonymous as well.
        imds.role = None
        assert inst.error("stat", uri("data/blob.bin")).error == "PM_EACCES"
    # No metadata service where one was named: the reason is given.
    res = inst.error("stat", uri("data/blob.bin"))
    assert res.error == "PM_EACCES" and "instance role" in res.detail


def test_role_of_a_container(s3, driver, proxy, tmp_path):
    """EKS Pod Identity (and ECS): keys from the container credentials
    endpoint, the call authorized by the projected token, read anew for
    each fetch; ahead of the instance role, behind a profile's keys."""
    creds = _temporary_keys(s3, "pm-container")
    keys = {"AccessKeyId": creds["AccessKeyId"],
            "SecretAccessKey": creds["SecretAccessKey"],
            "Token": creds["SessionToken"]}
    token = tmp_path / "eks-pod-identity-token"
    token.write_text("pod-token-1\n")
    with ContainerCredentials(keys, token="pod-token-1") as agent, \
            IMDS({"AccessKeyId": "X", "SecretAccessKey": "Y",
                  "Token": "Z"}) as imds:
        pod = _no_keys(driver, AWS_EC2_METADATA_DISABLED=None,
                       AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.endpoint,
                       AWS_CONTAINER_CREDENTIALS_FULL_URI=agent.url,
                       AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=str(token))
        listed = pod.with_env(PAGEMESH_S3_MAX_KEYS=10).list(uri("many/"))
        assert len(listed) == len(MANY)
        headers = proxy.stats()["recent"][-1]["headers"]
        assert headers["x-amz-security-token"] == creds["SessionToken"]
        assert agent.calls == 1 and agent.authorizations == ["pod-token-1"]
        assert imds.calls == {}  # the instance role is not asked
        # The token file is read for each fetch: a rotated token is sent.
        token.write_text("pod-token-2\n")
        agent.token = "pod-token-2"
        assert pod.read(uri("data/blob.bin"), 0, 8) == BLOB[:8]
        assert agent.authorizations[-1] == "pod-token-2"
        # A token the agent refuses: the reason names the source.
        agent.token = "another"
        res = pod.error("stat", uri("data/blob.bin"))
        assert res.error == "PM_EACCES" and "container role" in res.detail
        assert "HTTP 401" in res.detail
        # An agent still starting (503) is asked again: three attempts.
        agent.token = "pod-token-2"
        agent.fail_next = 2
        calls = agent.calls
        assert pod.read(uri("data/blob.bin"), 0, 8) == BLOB[:8]
        assert agent.calls == calls + 3
        agent.fail_next = 3
        res = pod.error("stat", uri("data/blob.bin"))
        assert res.error == "PM_EACCES" and "HTTP 503" in res.detail
        assert "starting" in res.detail
        # A token given in the environment instead of a file.
        agent.token = "env-token"
        env = pod.with_env(AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=None,
                           AWS_CONTAINER_AUTHORIZATION_TOKEN="env-token")
        assert env.read(uri("data/blob.bin"), 0, 8) == BLOB[:8]
        # A token too long for a header line says so, with no call made.
        calls = agent.calls
        token.write_text("x" * 9000)
        res = pod.error("stat", uri("data/blob.bin"))
        assert res.error == "PM_EACCES", res.detail
        assert "Authorization header would be over 8192 bytes" in res.detail
        assert agent.calls == calls
        token.write_text("pod-token-2\n")
        # A profile's keys come first.
        wrong = _write(tmp_path / "credentials", (
            "[default]\naws_access_key_id = AKIAWRONG\n"
            "aws_secret_access_key = wrong\n"))
        calls = agent.calls
        res = pod.with_env(AWS_SHARED_CREDENTIALS_FILE=wrong).error(
            "stat", uri("data/blob.bin"))
        assert res.error == "PM_EACCES" and agent.calls == calls
    # A full URI to another host over http is refused before any call.
    res = _no_keys(driver, AWS_CONTAINER_CREDENTIALS_FULL_URI=(
        "http://example.com/creds")).error("stat", uri("data/blob.bin"))
    assert res.error == "PM_ECONFIG"
    assert "AWS_CONTAINER_CREDENTIALS_FULL_URI" in res.detail


def test_concurrent_reads_share_connections(driver, proxy):
    out = driver.run("hammer", uri("data/blob.bin"), 8, 40).check()
    assert out.stdout == b"ok\n"
    stats = proxy.stats()
    assert stats["requests"]["GET"] == 1 + 8 * 40
    assert stats["connections"] <= 16  # kept alive, not one per request


def test_origin_bytes_are_counted(driver):
    res = driver.run("read", uri("data/blob.bin"), 100, 5000).check()
    assert res.requests == 2 and res.bytes == 5000
