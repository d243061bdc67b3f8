"""Stand-ins for instance metadata services on 127.0.0.1: EC2's (IMDSv2),
for the S3 connector's instance-role credentials, the container
credentials endpoint of ECS and EKS Pod Identity (ContainerCredentials,
below), GCE's, for a GCS
service account's token (GCEMetadata, below), and Azure's, for a managed
identity's token (AzureIMDS): what an instance answers, and nothing
more; and for the services elsewhere that hand out keys and tokens, STS
(WebIdentitySTS), an OAuth token endpoint (TokenEndpoint), Google's
IAM Credentials API (GenerateAccessToken) and the AWS SSO portal
(SSOPortal).

    PUT /latest/api/token          (X-aws-ec2-metadata-token-ttl-seconds)
    GET /latest/meta-data/iam/security-credentials/        -> role name
    GET /latest/meta-data/iam/security-credentials/<role>  -> JSON keys

The GETs need the token from the PUT in X-aws-ec2-metadata-token (401
without it, as IMDSv2 answers); the role list is 404 when the instance
has no role. ``imds.keys`` is what the role hands out (set it to change
the keys), ``imds.calls`` the requests by path. Runs in a thread of the
test process; a context manager.
"""

import json
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_TOKEN = "imds-token-for-tests"
_CREDS = "/latest/meta-data/iam/security-credentials/"


class _Service:
    """A metadata service on 127.0.0.1 in a thread of the test process; a
    context manager. Subclasses name their request handler (whose
    ``service`` is the instance)."""

    handler = None

    def __enter__(self):
        handler = type("Handler", (self.handler,), {"service": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever,
                         daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    @property
    def host(self):
        return "127.0.0.1:%d" % self.server.server_address[1]

    @property
    def endpoint(self):
        return "http://" + self.host


class IMDS(_Service):
    def __init__(self, keys, role="pm-instance-role", lifetime_s=6 * 3600):
        self.keys = keys          # AccessKeyId, SecretAccessKey, Token
        self.role = role          # None: an instance without a role
        self.lifetime_s = lifetime_s
        self.calls = {}
        self.server = None
        self.handler = _Handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    service = None

    def log_message(self, *args):
        pass

    def _send(self, status, body=b"", kind="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _count(self):
        key = "%s %s" % (self.command, self.path)
        self.service.calls[key] = self.service.calls.get(key, 0) + 1

    def do_PUT(self):
        self._count()
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if (self.path != "/latest/api/token" or
                not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")):
            self._send(400)
            return
        self._send(200, _TOKEN.encode())

    def do_GET(self):
        self._count()
        if self.headers.get("X-aws-ec2-metadata-token") != _TOKEN:
            self._send(401)
            return
        imds = self.service
        if self.path == _CREDS:
            if imds.role is None:
                self._send(404)
            else:
                self._send(200, imds.role.encode())
            return
        if imds.role is None or self.path != _CREDS + imds.role:
            self._send(404)
            return
        now = datetime.now(timezone.utc)
        expiry = now + timedelta(seconds=imds.lifetime_s)
        body = dict(imds.keys, Code="Success", Type="AWS-HMAC",
                    LastUpdated=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    Expiration=expiry.strftime("%Y-%m-%dT%H:%M:%SZ"))
        self._send(200, json.dumps(body).encode(), "application/json")


class ContainerCredentials(_Service):
    """The container credentials endpoint (the ECS agent, the EKS Pod
    Identity agent): ``GET path`` answers the role's keys as JSON
    (AccessKeyId, SecretAccessKey, Token, AccountId, Expiration), 401
    when ``token`` is set and the Authorization header is not it, 404 on
    another path, 503 for the next ``fail_next`` GETs (an agent starting).
    ``calls`` counts the GETs, ``authorizations`` lists the headers
    received."""

    def __init__(self, keys, path="/v1/credentials", token=None,
                 lifetime_s=6 * 3600):
        self.keys = keys          # AccessKeyId, SecretAccessKey, Token
        self.path = path
        self.token = token
        self.lifetime_s = lifetime_s
        self.calls = 0
        self.authorizations = []
        self.fail_next = 0        # answer that many GETs 503 first
        self.server = None
        self.handler = _ContainerHandler

    @property
    def url(self):
        return self.endpoint + self.path


class _ContainerHandler(_Handler):
    def do_GET(self):
        svc = self.service
        svc.calls += 1
        svc.authorizations.append(self.headers.get("Authorization"))
        if svc.fail_next > 0:
            svc.fail_next -= 1
            self._send(503, b'{"message":"starting"}', "application/json")
            return
        if self.path != svc.path:
            self._send(404)
            return
        if svc.token is not None and \
                self.headers.get("Authorization") != svc.token:
            self._send(401, b'{"code":"AccessDenied"}', "application/json")
            return
        expiry = datetime.now(timezone.utc) + timedelta(
            seconds=svc.lifetime_s)
        body = dict(svc.keys, AccountId="123456789012",
                    Expiration=expiry.strftime("%Y-%m-%dT%H:%M:%SZ"))
        self._send(200, json.dumps(body).encode(), "application/json")


class GCEMetadata(_Service):
    """A stand-in for a GCE instance's metadata server on 127.0.0.1: the
    access token of the default service account, at
    GET /computeMetadata/v1/instance/service-accounts/default/token, only
    with "Metadata-Flavor: Google" (403 without, as GCE answers). ``token``
    None: an instance without a service account (404). ``host`` is what
    GCE_METADATA_HOST takes; ``calls`` counts token requests."""

    PATH = "/computeMetadata/v1/instance/service-accounts/default/token"

    def __init__(self, token, expires_in=3599):
        self.token = token
        self.expires_in = expires_in
        self.calls = 0
        self.server = None
        self.handler = _GCEHandler


class _GCEHandler(_Handler):
    def do_GET(self):
        md = self.service
        if self.path != GCEMetadata.PATH:
            self._send(404)
            return
        md.calls += 1
        if self.headers.get("Metadata-Flavor") != "Google":
            self._send(403)
            return
        if md.token is None:
            self._send(404)
            return
        body = {"access_token": md.token, "expires_in": md.expires_in,
                "token_type": "Bearer"}
        self._send(200, json.dumps(body).encode(), "application/json")


class AzureIMDS(_Service):
    """A stand-in for Azure's IMDS token endpoint on 127.0.0.1 (what
    AZURE_POD_IDENTITY_AUTHORITY_HOST names): GET
    /metadata/identity/oauth2/token?api-version=...&resource=...
    [&client_id=...] with "Metadata: true" (400 without) answers a token
    for Azure Storage whose expires_in is a string, as Azure sends it.
    ``queries`` keeps the query of each token request."""

    def __init__(self, token, expires_in="86399"):
        self.token = token
        self.expires_in = expires_in
        self.queries = []
        self.server = None
        self.handler = _AzureHandler


class _AzureHandler(_Handler):
    def do_GET(self):
        from urllib.parse import parse_qs, urlsplit
        az = self.service
        parts = urlsplit(self.path)
        if parts.path != "/metadata/identity/oauth2/token":
            self._send(404)
            return
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        az.queries.append(query)
        if (self.headers.get("Metadata") != "true" or
                query.get("resource") != "https://storage.azure.com/"):
            self._send(400)
            return
        body = {"access_token": az.token, "expires_in": az.expires_in,
                "token_type": "Bearer",
                "resource": "https://storage.azure.com/"}
        self._send(200, json.dumps(body).encode(), "application/json")


class WebIdentitySTS(_Service):
    """A stand-in for STS's AssumeRoleWithWebIdentity (moto's STS cannot
    answer it with authentication on): GET or POST
    /?Action=AssumeRoleWithWebIdentity&RoleArn=...&RoleSessionName=...
    &WebIdentityToken=... answers ``keys`` (AccessKeyId, SecretAccessKey,
    SessionToken: temporary keys moto honours) in STS's XML, expiring in
    ``lifetime_s``; a request without the three parameters gets STS's 400.
    ``queries`` keeps the parameters of each call."""

    def __init__(self, keys, lifetime_s=3600):
        self.keys = keys
        self.lifetime_s = lifetime_s
        self.queries = []
        self.server = None
        self.handler = _STSHandler


class _STSHandler(_Handler):
    def do_GET(self):
        from urllib.parse import parse_qs, urlsplit
        sts = self.service
        query = {k: v[-1] for k, v in
                 parse_qs(urlsplit(self.path).query).items()}
        sts.queries.append(query)
        if (query.get("Action") != "AssumeRoleWithWebIdentity" or
                not all(query.get(k) for k in ("RoleArn", "RoleSessionName",
                                               "WebIdentityToken"))):
            body = (b"<ErrorResponse><Error><Type>Sender</Type><Code>"
                    b"ValidationError</Code></Error></ErrorResponse>")
            self._send(400, body, "text/xml")
            return
        expiry = (datetime.now(timezone.utc) +
                  timedelta(seconds=sts.lifetime_s))
        body = (
            '<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws'
            '.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult>'
            '<Credentials><AccessKeyId>%s</AccessKeyId><SecretAccessKey>%s'
            '</SecretAccessKey><SessionToken>%s</SessionToken><Expiration>%s'
            '</Expiration></Credentials><SubjectFromWebIdentityToken>system:'
            'serviceaccount:ml:reader</SubjectFromWebIdentityToken>'
            '</AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>'
            'pm</RequestId></ResponseMetadata>'
            '</AssumeRoleWithWebIdentityResponse>' % (
                sts.keys["AccessKeyId"], sts.keys["SecretAccessKey"],
                sts.keys["SessionToken"],
                expiry.strftime("%Y-%m-%dT%H:%M:%SZ"))).encode()
        self._send(200, body, "text/xml")


class TokenEndpoint(_Service):
    """A stand-in for an OAuth 2.0 token endpoint on 127.0.0.1 (Google's
    https://oauth2.googleapis.com/token, Microsoft Entra's
    /TENANT/oauth2/v2.0/token): a POST of a urlencoded form to ``path``.
    ``check(form)`` (form: dict of the fields) returns None to grant it,
    then the answer is ``token`` with ``expires_in``; else the OAuth error
    code it returned, answered 400 as {"error", "error_description"}.
    ``forms`` keeps each form posted; ``url`` is the endpoint's URL."""

    def __init__(self, token, check, path="/token", expires_in=3599):
        self.token = token
        self.check = check
        self.path = path
        self.expires_in = expires_in
        self.forms = []
        self.server = None
        self.handler = _TokenHandler

    @property
    def url(self):
        return self.endpoint + self.path


class _TokenHandler(_Handler):
    def do_POST(self):
        from urllib.parse import parse_qs
        ep = self.service
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode()
        if (self.path != ep.path or self.headers.get("Content-Type") !=
                "application/x-www-form-urlencoded"):
            self._send(404)
            return
        form = {k: v[-1] for k, v in parse_qs(raw).items()}
        ep.forms.append(form)
        error = ep.check(form)
        if error:
            body = {"error": error,
                    "error_description": "refused by the stand-in"}
            self._send(400, json.dumps(body).encode(), "application/json")
            return
        body = {"access_token": ep.token, "expires_in": ep.expires_in,
                "token_type": "Bearer"}
        self._send(200, json.dumps(body).encode(), "application/json")


class GenerateAccessToken(_Service):
    """A stand-in for Google's IAM Credentials API generateAccessToken at
    ``path``: a JSON POST ({"scope": [...], "lifetime": "3600s"}) with
    "Authorization: Bearer <bearer>" gets ``token`` for the service
    account, expiring in an hour; another bearer gets 403 and Google's
    error JSON. ``requests`` keeps (authorization, body) of each."""

    def __init__(self, token, bearer,
                 path="/v1/projects/-/serviceAccounts/"
                      "reader@p.iam.gserviceaccount.com:generateAccessToken"):
        self.token = token
        self.bearer = bearer
        self.path = path
        self.requests = []
        self.server = None
        self.handler = _IAMHandler

    @property
    def url(self):
        return self.endpoint + self.path


class _IAMHandler(_Handler):
    def do_POST(self):
        iam = self.service
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        auth = self.headers.get("Authorization")
        iam.requests.append((auth, json.loads(raw or b"null")))
        if (self.path != iam.path or self.headers.get("Content-Type") !=
                "application/json"):
            self._send(404)
            return
        if auth != "Bearer " + iam.bearer:
            body = {"error": {"code": 403, "status": "PERMISSION_DENIED",
                              "message": "Permission 'iam.serviceAccounts."
                                         "getAccessToken' denied"}}
            self._send(403, json.dumps(body).encode(), "application/json")
            return
        expiry = datetime.now(timezone.utc) + timedelta(hours=1)
        body = {"accessToken": iam.token,
                "expireTime": expiry.strftime("%Y-%m-%dT%H:%M:%SZ")}
        self._send(200, json.dumps(body).encode(), "application/json")


class SSOPortal(_Service):
    """A stand-in for the AWS SSO portal's GetRoleCredentials: ``GET
    /federation/credentials?role_name=R&account_id=A`` with the header
    x-amz-sso_bearer_token equal to ``token`` answers ``keys``
    (AccessKeyId, SecretAccessKey, SessionToken) as roleCredentials,
    expiring in an hour (milliseconds since the epoch); another token gets
    401. ``calls`` keeps (bearer, query) of each."""

    def __init__(self, keys, token):
        self.keys = keys
        self.token = token
        self.calls = []
        self.server = None
        self.handler = _SSOHandler


class _SSOHandler(_Handler):
    def do_GET(self):
        from urllib.parse import parse_qs, urlsplit
        portal = self.service
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        bearer = self.headers.get("x-amz-sso_bearer_token")
        portal.calls.append((bearer, query))
        if split.path != "/federation/credentials":
            self._send(404)
            return
        if bearer != portal.token:
            body = {"message": "Session token not found or invalid"}
            self._send(401, json.dumps(body).encode(), "application/json")
            return
        expiry = datetime.now(timezone.utc) + timedelta(hours=1)
        body = {"roleCredentials": {
            "accessKeyId": portal.keys["AccessKeyId"],
            "secretAccessKey": portal.keys["SecretAccessKey"],
            "sessionToken": portal.keys["SessionToken"],
            "expiration": int(expiry.timestamp() * 1000)}}
        self._send(200, json.dumps(body).encode(), "application/json")
