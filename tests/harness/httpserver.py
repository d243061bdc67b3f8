"""A plain HTTP origin for tests, with switches for the behaviours real
servers show: honour Range or ignore it (sending the whole body with 200),
send an ETag or not, send Last-Modified or not, honour If-Match or not,
refuse HEAD (405), answer HEAD without a Content-Length, or answer a path
with a fixed status.

    with HTTPOrigin(honour_range=False) as web:
        web.put("/data.bin", payload)
        url = web.url("/data.bin")

Objects live in memory; put() replaces one (new ETag, new mtime). Requests
are counted by method in ``web.counts``. HTTP/1.1 with keep-alive; runs in
a thread of the test process.
"""

import email.utils
import hashlib
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class _Object:
    def __init__(self, data, mtime):
        self.data = data
        self.mtime = mtime
        self.etag = '"%s"' % hashlib.sha1(
            data + str(mtime).encode()).hexdigest()[:20]


class HTTPOrigin:
    def __init__(self, honour_range=True, send_etag=True,
                 send_last_modified=True, honour_if_match=True,
                 refuse_head=False, head_without_length=False):
        self.honour_range = honour_range
        self.send_etag = send_etag
        self.send_last_modified = send_last_modified
        self.honour_if_match = honour_if_match
        self.refuse_head = refuse_head
        self.head_without_length = head_without_length
        self.objects = {}
        self.statuses = {}
        self.counts = {}
        self.lock = threading.Lock()
        self.server = None
        self.thread = None

    # ---- content --------------------------------------------------------

    def put(self, path, data, mtime=None):
        """Store (or replace) an object. mtime defaults to now, and always
        moves forward on replacement so Last-Modified changes."""
        with self.lock:
            old = self.objects.get(path)
            if mtime is None:
                mtime = int(time.time())
                if old and mtime <= old.mtime:
                    mtime = old.mtime + 1
            self.objects[path] = _Object(bytes(data), mtime)

    def set_status(self, path, status):
        """Answer every request for path with this status."""
        self.statuses[path] = status

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    @property
    def port(self):
        return self.server.server_address[1]

    # ---- life ---------------------------------------------------------------

    def start(self):
        origin = self

        class Handler(_Handler):
            pass
        Handler.origin = origin
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
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


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    origin = None

    def log_message(self, *args):
        pass

    def _count(self):
        with self.origin.lock:
            self.origin.counts[self.command] = \
                self.origin.counts.get(self.command, 0) + 1

    def _send(self, status, headers, body=b""):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        try:
            if body and self.command != "HEAD":
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _meta_headers(self, obj):
        headers = []
        if self.origin.send_etag:
            headers.append(("ETag", obj.etag))
        if self.origin.send_last_modified:
            headers.append(("Last-Modified",
                            email.utils.formatdate(obj.mtime, usegmt=True)))
        return headers

    def do_HEAD(self):
        self._count()
        if self.origin.refuse_head:
            # True: 405, as a server without HEAD; or the status given
            # (403: a presigned URL, signed for GET only).
            status = (405 if self.origin.refuse_head is True
                      else self.origin.refuse_head)
            self._send(status, [("Allow", "GET"), ("Content-Length", "0")])
            return
        obj = self._lookup()
        if obj is None:
            return
        headers = self._meta_headers(obj)
        if not self.origin.head_without_length:
            headers.append(("Content-Length", str(len(obj.data))))
        else:
            self.close_connection = True
        self._send(200, headers)

    def do_GET(self):
        self._count()
        obj = self._lookup()
        if obj is None:
            return
        if_match = self.headers.get("If-Match")
        if (if_match and self.origin.honour_if_match and
                if_match.strip() != obj.etag):
            self._send(412, [("Content-Length", "0")])
            return
        headers = self._meta_headers(obj)
        data = obj.data
        wanted = self.headers.get("Range")
        if wanted and self.origin.honour_range:
            self._send_range(obj, headers, wanted)
            return
        headers.append(("Content-Length", str(len(data))))
        self._send(200, headers, data)

    def _send_range(self, obj, headers, wanted):
        size = len(obj.data)
        m = _RANGE.match(wanted.strip())
        if not m or (not m.group(1) and not m.group(2)):
            headers.append(("Content-Length", str(size)))
            self._send(200, headers, obj.data)
            return
        if m.group(1):
            first = int(m.group(1))
            last = int(m.group(2)) if m.group(2) else size - 1
        else:
            first, last = max(0, size - int(m.group(2))), size - 1
        last = min(last, size - 1)
        if first >= size or first > last:
            headers += [("Content-Range", "bytes */%d" % size),
                        ("Content-Length", "0")]
            self._send(416, headers)
            return
        body = obj.data[first:last + 1]
        headers += [("Content-Range", "bytes %d-%d/%d" % (first, last, size)),
                    ("Content-Length", str(len(body)))]
        self._send(206, headers, body)

    def _lookup(self):
        path = self.path.split("?", 1)[0]
        status = self.origin.statuses.get(path)
        if status:
            self._send(status, [("Content-Length", "0")])
            return None
        with self.origin.lock:
            obj = self.origin.objects.get(path)
        if obj is None:
            body = b"not found\n"
            self._send(404, [("Content-Length", str(len(body)))], body)
        return obj
