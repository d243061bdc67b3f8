"""The Azure Blob origin (ufs/azure.c) against Azurite, which checks Shared
Key signatures and SAS tokens, driven through pm_ufs_driver and through the
`pagemesh` command. One Azurite per module; an origin_proxy in front of it
counts requests and injects faults."""

import base64
import random

import pytest

from harness import util
from harness.azurite import ACCOUNT, KEY, Azurite
from harness.cloud_env import blank, clean_env
from harness.imds import AzureIMDS, TokenEndpoint
from harness.pagemesh_cli import PagemeshCLI
from harness.ufs_driver import Driver
from harness.keepalive_proxy import OriginProxy

CONTAINER = "pm-test"
MiB = 1024 * 1024
BLOB = random.Random(11).randbytes(MiB + 321)
BIG = random.Random(12).randbytes(2 * MiB + 77)  # 3 pages
SPECIAL = ["names/with space.txt", "names/a+b=c.txt", "names/ünï-日本.txt",
           "names/100%.txt", "names/what?#frag.txt", "names/a@b:c;(d)!$&'*,~"]
TREE = ["dir/a/1", "dir/a/2", "dir/b", "dir/c/d/e"]
MANY = ["many/k%03d" % i for i in range(17)]
WRONG_KEY = base64.b64encode(b"not the key" * 6).decode()
# Azure says AuthenticationFailed; Azurite says AuthorizationFailure.
AUTH_CODES = ("AuthenticationFailed", "AuthorizationFailure")


def names_auth_failure(detail):
    return "403" in detail and any(c in detail for c in AUTH_CODES)


@pytest.fixture(scope="module")
def azurite():
    with Azurite() as az:
        az.create_container(CONTAINER)
        blobs = {"data/blob.bin": BLOB, "data/big.bin": BIG,
                 "data/empty": b""}
        blobs.update({k: k.encode() * 3 for k in SPECIAL})
        blobs.update({k: k.encode() for k in TREE + MANY})
        az.put_many(CONTAINER, blobs)
        az.create_container("other")
        yield az


@pytest.fixture(scope="module")
def proxy(azurite):
    with OriginProxy("http://127.0.0.1:%d" % azurite.port) as p:
        yield p


def endpoint(proxy):
    return "%s/%s" % (proxy.url, ACCOUNT)


@pytest.fixture
def driver(azurite, proxy, tmp_path):
    proxy.reset_stats()
    proxy.fail_next(0)
    return Driver(clean_env(tmp_path, **azurite.env(endpoint(proxy))))


def uri(name, container=CONTAINER):
    return "az://%s/%s" % (container, name)


def recent(proxy, method=None):
    return [r for r in proxy.stats()["recent"]
            if method is None or r["method"] == method]


def test_stat_gives_size_etag_and_mtime(azurite, driver):
    props = azurite.properties(CONTAINER, "data/blob.bin")
    st = driver.stat(uri("data/blob.bin"))
    assert st["size"] == len(BLOB)
    assert st["version"] == props.etag.strip('"')
    assert st["mtime_ns"] == int(props.last_modified.timestamp()) * 10**9


@pytest.mark.parametrize("offset,length", [
    (0, 1), (1, 4096), (777_777, 65_536), (len(BLOB) - 5, 100),
    (0, len(BLOB)),
])
def test_ranged_reads_are_exact_and_signed(driver, proxy, offset, length):
    assert driver.read(uri("data/blob.bin"), offset, length) == \
        BLOB[offset:offset + length]
    get = recent(proxy, "GET")[-1]["headers"]
    assert get["range"] == "bytes=%d-%d" % (
        offset, min(offset + length, len(BLOB)) - 1)
    assert get["if-match"].startswith('"0x')
    assert get["authorization"].startswith("SharedKey %s:" % ACCOUNT)
    assert get["x-ms-version"] and get["x-ms-date"].endswith(" GMT")


def test_empty_blob_and_past_the_end(driver):
    assert driver.stat(uri("data/empty"))["size"] == 0
    assert driver.read(uri("data/empty"), 0, 10) == b""
    assert driver.read(uri("data/blob.bin"), len(BLOB), 10) == b""


def test_wrong_key_is_a_clear_403(azurite, driver, proxy):
    bad = driver.with_env(AZURE_STORAGE_CONNECTION_STRING=(
        azurite.connection_string(endpoint(proxy), key=WRONG_KEY)))
    res = bad.error("stat", uri("data/blob.bin"))
    assert res.error == "PM_EACCES" and names_auth_failure(res.detail)
    assert uri("data/blob.bin") in res.detail
    res = bad.error("read", uri("data/blob.bin"), 0, 10, "0x1", len(BLOB))
    assert res.error == "PM_EACCES" and names_auth_failure(res.detail)
    res = bad.error("list", uri("dir/"))
    assert res.error == "PM_EACCES" and "check the account key" in res.detail


def test_key_that_is_not_base64_is_a_config_error(azurite, driver):
    res = driver.with_env(AZURE_STORAGE_CONNECTION_STRING=(
        azurite.connection_string(key="not*base64"))).error(
            "stat", uri("data/blob.bin"))
    assert res.error == "PM_ECONFIG" and "base64" in res.detail


def test_no_credentials_is_refused_by_a_private_container(driver, proxy):
    anon = driver.with_env(AZURE_STORAGE_CONNECTION_STRING=None,
                           AZURE_STORAGE_ACCOUNT=ACCOUNT,
                           AZURE_STORAGE_BLOB_ENDPOINT=endpoint(proxy))
    res = anon.error("stat", uri("data/blob.bin"))
    assert res.error in ("PM_EACCES", "PM_ENOENT")
    assert "authorization" not in recent(proxy)[-1]["headers"]


def test_managed_identity_token_is_sent(driver, proxy):
    """An account with neither key nor SAS token, on an Azure VM: requests
    to it carry a bearer token of the machine's managed identity from the
    metadata service, fetched once per process (it lives a day), for a
    user-assigned identity when AZURE_CLIENT_ID names one."""
    # Azurite accepts OAuth only over https: only what is sent is checked.
    with AzureIMDS("eyJ0eXAi.managed") as md:
        mi = driver.with_env(AZURE_STORAGE_CONNECTION_STRING=None,
                             AZURE_STORAGE_ACCOUNT=ACCOUNT,
                             AZURE_STORAGE_BLOB_ENDPOINT=endpoint(proxy),
                             PAGEMESH_AZURE_MANAGED_IDENTITY=None,
                             AZURE_POD_IDENTITY_AUTHORITY_HOST=md.endpoint,
                             PAGEMESH_ORIGIN_RETRIES=0)
        mi.error("list", uri("many/"))
        mi.error("stat", uri("data/blob.bin"))
        for req in recent(proxy)[-2:]:
            assert req["headers"]["authorization"] == \
                "Bearer eyJ0eXAi.managed"
        assert len(md.queries) == 2  # one per process
        assert "client_id" not in md.queries[-1]
        mi.with_env(AZURE_CLIENT_ID="5f3b-user-assigned").error(
            "stat", uri("data/blob.bin"))
        assert md.queries[-1]["client_id"] == "5f3b-user-assigned"
        # Turned off: no token is asked for, the request is anonymous.
        mi.with_env(PAGEMESH_AZURE_MANAGED_IDENTITY="off").error(
            "stat", uri("data/blob.bin"))
        assert len(md.queries) == 3
        assert "authorization" not in recent(proxy)[-1]["headers"]


def test_entra_application_tokens_are_sent(driver, proxy, tmp_path):
    """An account with neither key nor SAS token, and an application of
    Microsoft Entra ID: with AKS workload identity's federated token
    (AZURE_FEDERATED_TOKEN_FILE, read anew for each token) or with a
    client secret, a client-credentials grant for Azure Storage at
    AZURE_AUTHORITY_HOST/TENANT gets the token sent; a grant Entra refuses
    is PM_EACCES with its reason, and nothing reaches the account."""
    tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"

    def check(form):
        if (form.get("grant_type") != "client_credentials" or
                form.get("client_id") != "app-1" or
                form.get("scope") != "https://storage.azure.com/.default"):
            return "invalid_request"
        if "client_secret" in form:
            return None if form["client_secret"] == "s3cret~" \
                else "invalid_client"
        if form.get("client_assertion_type") != \
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            return "invalid_request"
        return None if form.get("client_assertion") == \
            "eyJhbGciOi.projected" else "invalid_client"

    token_file = tmp_path / "azure-identity-token"
    token_file.write_text("eyJhbGciOi.projected\n")
    path = "/%s/oauth2/v2.0/token" % tenant
    # Azurite accepts OAuth only over https: only what is sent is checked.
    with TokenEndpoint("eyJ0eXAi.of-the-app", check, path=path) as ep:
        app = driver.with_env(AZURE_STORAGE_CONNECTION_STRING=None,
                              AZURE_STORAGE_ACCOUNT=ACCOUNT,
                              AZURE_STORAGE_BLOB_ENDPOINT=endpoint(proxy),
                              AZURE_TENANT_ID=tenant, AZURE_CLIENT_ID="app-1",
                              AZURE_AUTHORITY_HOST=ep.endpoint,
                              PAGEMESH_ORIGIN_RETRIES=0)
        app.with_env(AZURE_FEDERATED_TOKEN_FILE=token_file).error(
            "stat", uri("data/blob.bin"))
        assert recent(proxy)[-1]["headers"]["authorization"] == \
            "Bearer eyJ0eXAi.of-the-app"
        assert ep.forms[-1]["client_assertion"] == "eyJhbGciOi.projected"
        app.with_env(AZURE_CLIENT_SECRET="s3cret~").error("list",
                                                          uri("many/"))
        assert recent(proxy)[-1]["headers"]["authorization"] == \
            "Bearer eyJ0eXAi.of-the-app"
        assert len(ep.forms) == 2
        sent = proxy.stats()["total_requests"]
        res = app.with_env(AZURE_CLIENT_SECRET="s3cret-rotated-out").error(
            "stat", uri("data/blob.bin"))
        assert res.error == "PM_EACCES" and "invalid_client" in res.detail
        assert "app-1" in res.detail and "rotated-out" not in res.detail
        assert proxy.stats()["total_requests"] == sent


def _b64url(text):
    import base64
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _certificate(name):
    """A self-signed RSA certificate and its key, as PEM (certificate
    first, as the Azure CLI writes them), and the certificate."""
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject)
            .issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    return pem, cert


def test_entra_application_with_a_certificate(driver, proxy, tmp_path):
    """AZURE_CLIENT_CERTIFICATE_PATH: each token is asked for with a client
    assertion, a JWT signed RS256 with the certificate's key that names
    the certificate by thumbprint (x5t), the token endpoint (aud) and the
    application (iss, sub), valid for minutes; Entra's stand-in verifies
    it with the certificate as Entra does. The file is read for each
    token: a rotated certificate is used at once."""
    import base64
    import json
    import time
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    tenant = "contoso.onmicrosoft.com"
    path = "/%s/oauth2/v2.0/token" % tenant
    trusted = {}  # x5t -> certificate registered for app-1

    def check(form):
        if (form.get("grant_type") != "client_credentials" or
                form.get("client_id") != "app-1" or
                form.get("client_assertion_type") !=
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" or
                "client_secret" in form):
            return "invalid_request"
        head, claims, sig = form.get("client_assertion", "..").split(".")
        header = json.loads(_b64url(head))
        cert = trusted.get(header.get("x5t"))
        if header.get("alg") != "RS256" or cert is None:
            return "invalid_client"
        try:
            cert.public_key().verify(_b64url(sig),
                                     (head + "." + claims).encode(),
                                     padding.PKCS1v15(), hashes.SHA256())
        except Exception:
            return "invalid_client"
        body = json.loads(_b64url(claims))
        now = time.time()
        if (body.get("aud") != ep.endpoint + path or
                body.get("iss") != "app-1" or body.get("sub") != "app-1" or
                len(body.get("jti", "")) < 16 or
                not body["nbf"] - 60 <= now < body["exp"] <= now + 3600):
            return "invalid_client"
        return None

    pem, cert = _certificate("app-1")
    x5t = base64.urlsafe_b64encode(cert.fingerprint(hashes.SHA1()))
    trusted[x5t.rstrip(b"=").decode()] = cert
    cert_file = tmp_path / "app-1.pem"
    cert_file.write_bytes(pem)
    with TokenEndpoint("eyJ0eXAi.cert-app", check, path=path) as ep:
        app = driver.with_env(AZURE_STORAGE_CONNECTION_STRING=None,
                              AZURE_STORAGE_ACCOUNT=ACCOUNT,
                              AZURE_STORAGE_BLOB_ENDPOINT=endpoint(proxy),
                              AZURE_TENANT_ID=tenant, AZURE_CLIENT_ID="app-1",
                              AZURE_AUTHORITY_HOST=ep.endpoint,
                              AZURE_CLIENT_CERTIFICATE_PATH=str(cert_file),
                              PAGEMESH_ORIGIN_RETRIES=0)
        app.error("stat", uri("data/blob.bin"))
        assert recent(proxy)[-1]["headers"]["authorization"] == \
            "Bearer eyJ0eXAi.cert-app"
        assert len(ep.forms) == 1
        # Rotated in place, not yet registered: refused with the reason.
        pem2, _ = _certificate("app-1")
        cert_file.write_bytes(pem2)
        sent = proxy.stats()["total_requests"]
        res = app.error("stat", uri("data/blob.bin"))
        assert res.error == "PM_EACCES" and "invalid_client" in res.detail
        assert proxy.stats()["total_requests"] == sent
    # Not a PEM with a key (a .pfx, say): a configuration error at once.
    cert_file.write_bytes(b"0\x82\x0a\x00 not PEM")
    res = app.error("stat", uri("data/blob.bin"))
    assert res.error == "PM_ECONFIG"
    assert "AZURE_CLIENT_CERTIFICATE_PATH" in res.detail and \
        "pkcs12" in res.detail


def test_no_account_at_all_is_a_config_error(driver):
    res = driver.with_env(AZURE_STORAGE_CONNECTION_STRING=None).error(
        "stat", uri("data/blob.bin"))
    assert res.error == "PM_ECONFIG" and "AZURE_STORAGE_ACCOUNT" in res.detail


def test_sas_token_from_the_environment(azurite, driver, proxy):
    sas = azurite.sas(CONTAINER)
    env = dict(AZURE_STORAGE_CONNECTION_STRING=None,
               AZURE_STORAGE_ACCOUNT=ACCOUNT,
               AZURE_STORAGE_BLOB_ENDPOINT=endpoint(proxy),
               AZURE_STORAGE_SAS_TOKEN="?" + sas)
    with_sas = driver.with_env(**env)
    assert with_sas.read(uri("data/blob.bin"), 5, 10) == BLOB[5:15]
    assert [e[0] for e in with_sas.list(uri("dir/"))] == \
        [uri("dir/a/"), uri("dir/b"), uri("dir/c/")]
    for req in recent(proxy):
        assert "authorization" not in req["headers"]
        assert "sig=" in req["path"] and "sv=" in req["path"]
    tampered = sas.replace("sig=", "sig=AAAA")
    res = with_sas.with_env(AZURE_STORAGE_SAS_TOKEN=tampered).error(
        "stat", uri("data/blob.bin"))
    assert res.error == "PM_EACCES" and "403" in res.detail
    # A container SAS does not open another container.
    res = with_sas.error("list", "az://other/")
    assert res.error == "PM_EACCES"


def test_sas_token_in_a_connection_string(azurite, driver, proxy):
    conn = "BlobEndpoint=%s;SharedAccessSignature=%s" % (
        endpoint(proxy), azurite.sas(CONTAINER))
    sas_only = driver.with_env(AZURE_STORAGE_CONNECTION_STRING=conn)
    st = sas_only.stat(uri("data/blob.bin"))
    assert st["size"] == len(BLOB)


@pytest.mark.parametrize("name", SPECIAL)
def test_special_names_round_trip(driver, name):
    data = name.encode() * 3
    assert driver.stat(uri(name))["size"] == len(data)
    assert driver.read(uri(name), 1, len(data)) == data[1:]
    assert uri(name) in [e[0] for e in driver.list(uri("names/"))]


def test_listing_with_delimiter_and_recursive(driver):
    entries = driver.list(uri("dir/"))
    assert [(e[0], e[1]) for e in entries] == [
        (uri("dir/a/"), True), (uri("dir/b"), False), (uri("dir/c/"), True)]
    assert entries[1][2] == len(b"dir/b") and entries[1][3].startswith("0x")
    assert driver.list(uri("dir")) == entries
    assert [e[0] for e in driver.list(uri("dir/"), recursive=True)] == \
        [uri(k) for k in TREE]
    top = [e[0] for e in driver.list("az://%s" % CONTAINER)]
    assert top == [uri("data/"), uri("dir/"), uri("many/"), uri("names/")]


def test_listed_versions_match_stat(driver):
    listed = {e[0]: e[3] for e in driver.list(uri("data/"))}
    assert listed[uri("data/blob.bin")] == \
        driver.stat(uri("data/blob.bin"))["version"]


def test_pagination_follows_markers(driver, proxy):
    paged = driver.with_env(PAGEMESH_AZURE_MAX_RESULTS=5)
    res = paged.run("list", uri("many/")).check()
    assert len(res.stdout.decode().splitlines()) == len(MANY)
    assert res.requests == 4  # ceil(17 / 5)
    assert sum("marker=" in r["path"] for r in recent(proxy)) == 3


def test_abfs_uris_name_the_same_blobs(driver):
    host = "%s.dfs.core.windows.net" % ACCOUNT
    for scheme in ("abfs", "abfss", "az"):
        u = "%s://%s@%s/data/blob.bin" % (scheme, CONTAINER, host)
        assert driver.read(u, 3, 4) == BLOB[3:7]
    listed = driver.list("abfs://%s@%s/dir/" % (CONTAINER, host.upper()))
    assert listed[0][0] == "abfs://%s@%s/dir/a/" % (CONTAINER, host)


def test_missing_blob_prefix_and_container(driver):
    res = driver.error("stat", uri("data/nope"))
    assert res.error == "PM_ENOENT" and "BlobNotFound" in res.detail
    assert uri("data/nope") in res.detail
    assert driver.error("list", uri("nothing/here/")).error == "PM_ENOENT"
    res = driver.error("list", "az://no-such-container/")
    assert res.error == "PM_ENOENT" and "ContainerNotFound" in res.detail


def test_bad_uris(driver):
    assert driver.error("stat", "az://Upper/x").error == "PM_EBADURI"
    assert driver.error("stat", "az:///x").error == "PM_EBADURI"
    assert driver.error("stat", "abfs://c@x.queue.core.windows.net/x") \
        .error == "PM_EBADURI"


def test_unreachable_endpoint(azurite, driver):
    dead = "http://127.0.0.1:%d/%s" % (util.free_port(), ACCOUNT)
    res = driver.with_env(AZURE_STORAGE_CONNECTION_STRING=(
        azurite.connection_string(dead))).error("stat", uri("data/blob.bin"))
    assert res.error == "PM_EUNREACHABLE"


def test_retries_on_503_then_success(driver, proxy):
    proxy.fail_next(2, status=503)
    assert driver.read(uri("data/blob.bin"), 10, 20) == BLOB[10:30]
    assert proxy.stats()["faults"] == 2
    proxy.fail_next(100, status=500)
    res = driver.with_env(PAGEMESH_ORIGIN_RETRIES=2).error(
        "stat", uri("data/blob.bin"))
    assert res.error == "PM_EORIGIN" and "3 attempts" in res.detail
    proxy.fail_next(0)


def test_changed_blob_between_stat_and_read(azurite, driver):
    azurite.put(CONTAINER, "changing", b"version one" * 100)
    st = driver.stat(uri("changing"))
    azurite.put(CONTAINER, "changing", b"version two" * 100)
    res = driver.error("read", uri("changing"), 0, 10, st["version"],
                       st["size"])
    assert res.error == "PM_ECHANGED" and "412" in res.detail
    assert driver.read(uri("changing"), 0, 11) == b"version two"


def test_concurrent_reads_share_connections(driver, proxy):
    assert driver.run("hammer", uri("data/blob.bin"), 6, 20) \
        .check().stdout == b"ok\n"
    stats = proxy.stats()
    assert stats["requests"]["GET"] == 1 + 6 * 20
    assert stats["connections"] <= 12


# ---- the pagemesh command -------------------------------------------------


@pytest.fixture
def cli(build_dir, tmp_path, azurite, proxy):
    proxy.reset_stats()
    return PagemeshCLI(build_dir, str(tmp_path / "cache"),
                       blank(**azurite.env(endpoint(proxy))))


def test_cli_cat_ls_stat_and_second_cat_costs_nothing(cli, proxy):
    u = uri("data/big.bin")
    assert cli.cat(u) == BIG
    assert proxy.stats()["requests"] == {"HEAD": 1, "GET": 3}
    proxy.reset_stats()
    assert cli.cat(u) == BIG
    assert proxy.stats()["total_requests"] == 0
    st = cli.json("stat", u, "--json")
    assert st["size"] == len(BIG) and st["version"].startswith("0x")
    names = [e["uri"] for e in cli.json("ls", uri("data/"), "--json")]
    assert names == [uri("data/big.bin"), uri("data/blob.bin"),
                     uri("data/empty")]
    deep = cli.json("ls", uri("dir"), "--json", "-r")
    assert sorted(e["uri"] for e in deep) == [uri(k) for k in TREE]


def test_cli_wrong_key_names_the_blob(cli, azurite, proxy):
    res = cli.run("cat", uri("data/blob.bin"), env={
        "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string(
            endpoint(proxy), key=WRONG_KEY)})
    assert res.returncode != 0
    err = res.stderr.decode()
    assert uri("data/blob.bin") in err and "403" in err


def test_key_from_account_and_key_variables(azurite, driver, proxy):
    env = driver.with_env(AZURE_STORAGE_CONNECTION_STRING=None,
                          AZURE_STORAGE_ACCOUNT=ACCOUNT, AZURE_STORAGE_KEY=KEY,
                          AZURE_STORAGE_BLOB_ENDPOINT=endpoint(proxy))
    assert env.read(uri("data/blob.bin"), 0, 8) == BLOB[:8]


class _DirectoryMarkingHandler:
    """Answers for blobs named "*/folder" carry x-ms-resource-type:
    directory, or x-ms-meta-hdi_isfolder: true for "*/hdi-folder", as an
    account with a hierarchical namespace marks its directories (Azurite
    has no such accounts)."""
    def _relay(self, resp):
        path = self.path.split("?")[0]
        mark = (("x-ms-resource-type", "directory")
                if path.endswith("/folder") else
                ("x-ms-meta-hdi_isfolder", "true")
                if path.endswith("/hdi-folder") else None)
        if mark:
            headers = resp.getheaders
            resp.getheaders = lambda: headers() + [mark]
        super()._relay(resp)


def test_a_directory_of_a_hierarchical_namespace_is_no_blob(azurite,
                                                            tmp_path):
    """A stat of a directory's empty blob is PM_ENOENT, said so; it was a
    0-byte file beside its own contents."""
    azurite.put_many(CONTAINER, {"hns/folder": b"", "hns/hdi-folder": b"",
                                 "hns/file": b"x"})
    with OriginProxy("http://127.0.0.1:%d" % azurite.port) as p:
        handler = p.server.RequestHandlerClass
        p.server.RequestHandlerClass = type(
            "DirectoryMarking", (_DirectoryMarkingHandler, handler), {})
        d = Driver(clean_env(tmp_path, **azurite.env(endpoint(p))))
        for name in ("hns/folder", "hns/hdi-folder"):
            res = d.error("stat", uri(name))
            assert res.error == "PM_ENOENT", (name, res)
            assert "a directory, not a blob" in res.detail, res.detail
        assert d.stat(uri("hns/file"))["size"] == 1
