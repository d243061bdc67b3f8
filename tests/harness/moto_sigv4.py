"""Run moto's server with its S3 signature check made faithful to AWS.

Why: moto (5.2) verifies an S3 request's SigV4 signature over the URL that
Werkzeug rebuilds from the *decoded* path: ``quote(path, safe="!$&'()*+,/:;=@%")``
followed by ``uri_to_iri`` (which turns %C3%BC back into "ü"). AWS instead
signs the key URI-encoded byte by byte, only unreserved characters and '/'
left as they are. So for keys holding '+', '=', '%', '@', non-ASCII and the
like, moto rejects correct signatures - boto3's own PutObject of "a+b" gets
403 SignatureDoesNotMatch - and would accept some wrong ones.

What this changes, and nothing else: for S3 requests, the URL that moto
hands to botocore's verifier is rebuilt from the raw request line the way
AWS does it - canonical path = quote(unquote(raw path), safe="/~"), query
as sent. A client that encodes keys wrongly (e.g. leaves '+' raw) still
fails, exactly as on AWS. Used by harness.s3server as
``python -m harness.moto_sigv4 -H 127.0.0.1 -p PORT``.
"""

import sys
from urllib.parse import quote, unquote, urlsplit, urlunsplit


def _patch():
    from moto.core import authorization, responses
    from moto.iam.access_control import S3IAMRequest

    original_setup = responses.BaseResponse.setup_class

    def setup_class(self, request, full_url, headers, *args, **kwargs):
        environ = getattr(request, "environ", None) or {}
        self._pm_raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI")
        return original_setup(self, request, full_url, headers, *args,
                              **kwargs)

    mixin = authorization.ActionAuthenticatorMixin
    original_check = mixin._authenticate_and_authorize_action

    def check(self, iam_request_cls, resource="*"):
        raw = getattr(self, "_pm_raw_uri", None)
        if iam_request_cls is not S3IAMRequest or not raw:
            return original_check(self, iam_request_cls, resource)
        raw_path, _, raw_query = raw.partition("?")
        canonical = quote(unquote(raw_path, errors="surrogateescape"),
                          safe="/~", errors="surrogateescape")
        parts = urlsplit(self.uri)
        saved = self.uri
        self.uri = urlunsplit((parts.scheme, parts.netloc, canonical,
                               raw_query, ""))
        try:
            return original_check(self, iam_request_cls, resource)
        finally:
            self.uri = saved

    responses.BaseResponse.setup_class = setup_class
    mixin._authenticate_and_authorize_action = check


def main(argv=None):
    _patch()
    from moto.server import main as moto_main
    moto_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
