#!/usr/bin/env python3
"""origin_proxy - a counting, shaping, fault-injecting HTTP reverse proxy
put in front of an origin (moto's S3 server, a plain HTTP server) by the
tests and by the benchmark.

It forwards every request unchanged - the Host header included, since
SigV4 signs it - over a keep-alive connection per client connection, and
streams bodies both ways (ranged GETs pass through untouched). It counts
what goes to the origin: requests by method, GET body bytes, client
connections, and keeps the last 200 requests (method, path, headers) for
tests to inspect. It can shape answers: a time-to-first-byte delay and a
per-connection bandwidth cap (both off by default). And it can fail: the
next N requests get a 500/503 (S3-style XML body) without reaching the
origin, to exercise retries.

In-process use (tests):

    proxy = OriginProxy("http://127.0.0.1:9000").start()
    proxy.url                       # point the client here
    proxy.fail_next(2, status=503)
    proxy.stats()["requests"]["GET"]
    proxy.stop()

Out-of-process use (benchmark): ``python3 perf/origin_proxy.py --upstream
URL [--port N] [--ttfb-ms MS] [--bandwidth BYTES_PER_S]`` prints one JSON
line {"url": ...} and serves until killed. Either way, the proxy answers
itself under /__pm_ paths (never forwarded, never counted):
  GET /__pm_stats                         counters as JSON
  GET /__pm_reset                         zero the counters
  GET /__pm_fault?count=N&status=503      fail the next N requests
  GET /__pm_config?ttfb_ms=X&bandwidth=Y  change the shaping
"""

import argparse
import collections
import http.client
import json
import signal
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
    "proxy-connection", "te", "trailer", "trailers", "transfer-encoding",
    "upgrade",
}
CHUNK = 64 * 1024
RECENT_MAX = 200
FAULT_CODES = {500: "InternalError", 503: "SlowDown"}


class OriginProxy:
    """A reverse proxy in front of `upstream` ("http://host:port")."""

    def __init__(self, upstream, host="127.0.0.1", port=0, ttfb_ms=0,
                 bandwidth=0):
        parts = urllib.parse.urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError("upstream must be http://host[:port]")
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port or 80
        self.listen = (host, port)
        self.ttfb_ms = ttfb_ms
        self.bandwidth = bandwidth
        self.lock = threading.Lock()
        self.server = None
        self.thread = None
        self._faults_left = 0
        self._fault_status = 503
        self._retry_after = None
        # As S3 for a bucket in another region: requests signed for any
        # other region are refused (301 with x-amz-bucket-region, or with
        # region_refusal 400, a 400 AuthorizationHeaderMalformed naming the
        # region in its body only, in a header for HEAD).
        self.bucket_region = None
        self.region_refusal = 301
        self.reset_stats()

    # ---- life ---------------------------------------------------------------

    def start(self):
        proxy = self

        class Handler(_ProxyHandler):
            pass
        Handler.proxy = proxy
        self.server = ThreadingHTTPServer(self.listen, Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       name="origin-proxy", daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def __enter__(self):
        return self.start() if self.server is None else self

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self):
        return self.server.server_address[1]

    @property
    def url(self):
        return "http://%s:%d" % (self.server.server_address[0], self.port)

    # ---- counters, faults, shaping ------------------------------------------

    def reset_stats(self):
        with self.lock:
            self._requests = collections.Counter()
            self._get_bytes = 0
            self._connections = 0
            self._faults = 0
            self._recent = collections.deque(maxlen=RECENT_MAX)

    def stats(self):
        """A snapshot: requests by method, total, GET body bytes, client
        connections, faults served, and the recent requests."""
        with self.lock:
            return {
                "requests": dict(self._requests),
                "total_requests": sum(self._requests.values()),
                "get_bytes": self._get_bytes,
                "connections": self._connections,
                "faults": self._faults,
                "recent": list(self._recent),
            }

    def fail_next(self, count, status=503, retry_after=None):
        """Answer the next `count` requests with `status` (and a
        Retry-After header of that many seconds, if given)."""
        with self.lock:
            self._faults_left = int(count)
            self._fault_status = int(status)
            self._retry_after = retry_after

    def configure(self, ttfb_ms=None, bandwidth=None):
        if ttfb_ms is not None:
            self.ttfb_ms = float(ttfb_ms)
        if bandwidth is not None:
            self.bandwidth = float(bandwidth)

    def _note_request(self, method, path, headers, body=None):
        entry = {"method": method, "path": path,
                 "headers": {k.lower(): v for k, v in headers.items()}}
        if method == "POST" and body and len(body) <= 4096:
            entry["body"] = body.decode("utf-8", "replace")  # e.g. STS forms
        with self.lock:
            self._requests[method] += 1
            self._recent.append(entry)

    def _note_connection(self):
        with self.lock:
            self._connections += 1

    def _note_get_bytes(self, n):
        with self.lock:
            self._get_bytes += n

    def _take_fault(self):
        with self.lock:
            if self._faults_left <= 0:
                return None
            self._faults_left -= 1
            self._faults += 1
            return self._fault_status

    def _control(self, path, query):
        """Answer a /__pm_ request; returns (status, JSON-able body)."""
        q = {k: v[-1] for k, v in urllib.parse.parse_qs(query).items()}
        if path == "/__pm_stats":
            return 200, self.stats()
        if path == "/__pm_reset":
            self.reset_stats()
            return 200, {"ok": True}
        if path == "/__pm_fault":
            self.fail_next(int(q.get("count", 1)), int(q.get("status", 503)))
            return 200, {"ok": True}
        if path == "/__pm_config":
            self.configure(q.get("ttfb_ms"), q.get("bandwidth"))
            return 200, {"ttfb_ms": self.ttfb_ms, "bandwidth": self.bandwidth}
        return 404, {"error": "unknown control path"}


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    proxy = None

    def setup(self):
        super().setup()
        self.upstream = None
        self.proxy._note_connection()

    def finish(self):
        try:
            super().finish()
        finally:
            self._drop_upstream()

    def log_message(self, *args):
        pass

    def _drop_upstream(self):
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None

    def do_GET(self):
        self._handle()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    # ---- one request ------------------------------------------------------------

    def _handle(self):
        path, _, query = self.path.partition("?")
        if path.startswith("/__pm_"):
            status, body = self.proxy._control(path, query)
            self._reply(status, json.dumps(body).encode(), "application/json")
            return
        body = self._read_body()
        self.proxy._note_request(self.command, self.path, self.headers, body)
        fault = self.proxy._take_fault()
        if fault:
            self._send_fault(fault)
            return
        if self._wrong_region():
            return
        if self.proxy.ttfb_ms:
            time.sleep(self.proxy.ttfb_ms / 1000.0)
        try:
            resp = self._forward(body)
        except OSError as e:
            self._drop_upstream()
            self._reply(502, ("origin_proxy: %s\n" % e).encode(), "text/plain")
            return
        self._relay(resp)

    def _read_body(self):
        length = self.headers.get("Content-Length")
        if length is not None:
            return self.rfile.read(int(length))
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        return None

    def _read_chunked(self):
        parts = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0",
                       16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()

    def _forward(self, body):
        """Send the request upstream (reconnecting once if a kept-alive
        connection turned out closed); returns the HTTPResponse."""
        for _ in range(2):
            fresh = self.upstream is None
            if fresh:
                self.upstream = http.client.HTTPConnection(
                    self.proxy.upstream_host, self.proxy.upstream_port,
                    timeout=120)
            try:
                self._send_upstream(body)
                return self.upstream.getresponse()
            except (http.client.RemoteDisconnected, ConnectionResetError,
                    BrokenPipeError, http.client.CannotSendRequest):
                self._drop_upstream()
                if fresh:
                    raise
        raise OSError("upstream keeps closing the connection")

    def _send_upstream(self, body):
        up = self.upstream
        up.putrequest(self.command, self.path, skip_host=True,
                      skip_accept_encoding=True)
        has_length = False
        for name, value in self.headers.items():
            if name.lower() in HOP_BY_HOP:
                continue
            has_length |= name.lower() == "content-length"
            up.putheader(name, value)
        if body is not None and not has_length:
            up.putheader("Content-Length", str(len(body)))
        up.endheaders(body)

    def _relay(self, resp):
        no_body = (self.command == "HEAD" or resp.status in (204, 304) or
                   resp.status < 200)
        chunked = not no_body and resp.getheader("Content-Length") is None
        self.send_response_only(resp.status, resp.reason)
        for name, value in resp.getheaders():
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        try:
            self.end_headers()
            if not no_body:
                self._stream(resp, chunked)
            else:
                resp.read()
        except (BrokenPipeError, ConnectionResetError):
            # The client stopped reading (e.g. it had enough of a body the
            # origin sent whole): the upstream answer is unfinished.
            resp.close()
            self._drop_upstream()
            self.close_connection = True
            return
        if resp.will_close:
            self._drop_upstream()

    def _stream(self, resp, chunked):
        started, sent = time.monotonic(), 0
        read = getattr(resp, "read1", resp.read)
        while True:
            data = read(CHUNK)
            if not data:
                break
            self._throttle(started, sent + len(data))
            if chunked:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            else:
                self.wfile.write(data)
            sent += len(data)
            if self.command == "GET":
                self.proxy._note_get_bytes(len(data))
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        resp.read()  # finish the response: its connection is reused

    def _throttle(self, started, total_bytes):
        if self.proxy.bandwidth:
            due = started + total_bytes / float(self.proxy.bandwidth)
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def _wrong_region(self):
        """Refuse a request signed for another region than bucket_region,
        as S3 does; True if refused."""
        want = self.proxy.bucket_region
        auth = self.headers.get("Authorization", "")
        if not want or "Credential=" not in auth:
            return False
        scope = auth.split("Credential=", 1)[1].split(",", 1)[0].split("/")
        if len(scope) > 2 and scope[2] == want:
            return False
        with self.proxy.lock:
            self.proxy._faults += 1
        if self.proxy.region_refusal == 400:
            body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>"
                    "AuthorizationHeaderMalformed</Code><Message>The "
                    "authorization header is malformed; the region '%s' is "
                    "wrong; expecting '%s'</Message><Region>%s</Region>"
                    "</Error>" % (scope[2] if len(scope) > 2 else "", want,
                                  want)).encode()
            # A HEAD answer has no body: S3 names the region in a header.
            self._reply(400, body, "application/xml",
                        {"x-amz-bucket-region": want}
                        if self.command == "HEAD" else None)
            return True
        body = b"" if self.command == "HEAD" else (
            b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>"
            b"PermanentRedirect</Code><Message>The bucket you are attempting "
            b"to access must be addressed using the specified endpoint."
            b"</Message></Error>")
        self._reply(301, body, "application/xml",
                    {"x-amz-bucket-region": want})
        return True

    def _send_fault(self, status):
        code = FAULT_CODES.get(status, "InjectedFault")
        body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s"
                "</Code><Message>injected by origin_proxy</Message></Error>"
                % code).encode()
        extra = {}
        if self.proxy._retry_after is not None:
            extra["Retry-After"] = str(self.proxy._retry_after)
        self._reply(status, body, "application/xml", extra)

    def _reply(self, status, body, content_type, extra=None):
        self.send_response(status)
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length",
                         "0" if self.command == "HEAD" else str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--upstream", required=True,
                        help="origin base URL, http://host:port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ttfb-ms", type=float, default=0,
                        help="delay before each answer (ms)")
    parser.add_argument("--bandwidth", type=float, default=0,
                        help="bytes/s per connection (0: unlimited)")
    args = parser.parse_args(argv)
    proxy = OriginProxy(args.upstream, args.host, args.port, args.ttfb_ms,
                        args.bandwidth).start()
    print(json.dumps({"url": proxy.url}), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    stop.wait()
    proxy.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
