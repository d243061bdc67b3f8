"""A real S3-compatible server for tests: moto's server with SigV4
authentication switched on.

moto checks signatures only once authentication is on. The recipe (see
PLATFORM.md in the shared notes): start ``moto_server`` with
``INITIAL_NO_AUTH_ACTION_COUNT=3``, then spend those three unauthenticated
calls on IAM: create a user, create its access key (the pair tests use) and
give it a policy allowing everything. After that a wrong secret gets 403
SignatureDoesNotMatch and an anonymous request 403.

    with S3Server() as s3:
        s3.create_bucket("pm-test")
        s3.put_object("pm-test", "a/b.bin", b"...")
        env = s3.env()        # AWS_* variables for a client under test

Each server is a separate process on 127.0.0.1 and a free port; stop()
ends its whole process group. moto runs through harness.moto_sigv4, which
fixes how moto canonicalises S3 keys when it checks signatures (stock moto
5.2 rejects AWS-correct signatures for keys with '+', '=', '%' or UTF-8).
"""

import json
import os
import sys

from .util import ServerProcess, free_port

ALLOW_ALL = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
})


def _moto_server_cmd():
    """moto's server, run through harness.moto_sigv4 (which makes its S3
    signature check follow AWS's key encoding: see that module)."""
    return [sys.executable, "-m", "harness.moto_sigv4"]


class S3Server(ServerProcess):
    """moto_server with authentication on; see the module docstring."""

    def __init__(self, region="us-east-1", user="pagemesh"):
        self.region = region
        self.user = user
        self.access_key = None
        self.secret_key = None

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self, timeout=60.0):
        self.port = free_port()
        env = dict(os.environ)
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
        for name in list(env):
            if name.startswith("AWS_"):
                del env[name]
        tests_dir = os.path.dirname(os.path.dirname(os.path.abspath(
            __file__)))
        env["PYTHONPATH"] = os.pathsep.join(
            [tests_dir] + [p for p in [env.get("PYTHONPATH")] if p])
        self._spawn(
            _moto_server_cmd() + ["-H", "127.0.0.1", "-p", str(self.port)],
            "moto-", timeout, env)
        try:
            self._enable_auth()
        except BaseException:
            self.stop()
            raise
        return self

    def _enable_auth(self):
        """Spend the three unauthenticated calls on the user tests use."""
        iam = self.client("iam", "bootstrap", "bootstrap")
        iam.create_user(UserName=self.user)
        key = iam.create_access_key(UserName=self.user)["AccessKey"]
        iam.put_user_policy(UserName=self.user, PolicyName="allow-all",
                            PolicyDocument=ALLOW_ALL)
        self.access_key = key["AccessKeyId"]
        self.secret_key = key["SecretAccessKey"]

    # ---- clients and helpers ---------------------------------------------

    def client(self, service="s3", access_key=None, secret_key=None,
               endpoint=None):
        """A boto3 client for this server (path-style for S3)."""
        import boto3
        from botocore.config import Config
        session = boto3.session.Session(
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            region_name=self.region)
        config = Config(s3={"addressing_style": "path"},
                        retries={"max_attempts": 2})
        return session.client(service, endpoint_url=endpoint or self.endpoint,
                              config=config)

    def create_bucket(self, bucket):
        self.client().create_bucket(Bucket=bucket)

    def put_object(self, bucket, key, data):
        """Store data; returns the ETag without quotes."""
        answer = self.client().put_object(Bucket=bucket, Key=key, Body=data)
        return answer["ETag"].strip('"')

    def put_objects(self, bucket, items):
        client = self.client()
        for key, data in items.items():
            client.put_object(Bucket=bucket, Key=key, Body=data)

    def delete_object(self, bucket, key):
        self.client().delete_object(Bucket=bucket, Key=key)

    def env(self, endpoint=None, **extra):
        """AWS_* variables that point a client under test at this server."""
        env = {
            "AWS_ENDPOINT_URL": endpoint or self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": self.region,
        }
        env.update(extra)
        return env
