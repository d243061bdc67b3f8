"""A stand-in for the Hugging Face Hub at HF_ENDPOINT, answering the paths
huggingface_hub (and pagemesh's hf:// origin) use the way the Hub does:

- ``HEAD/GET /[datasets/|spaces/]ORG/NAME/resolve/REV/PATH``: a small
  (non-LFS) file answers 200 (or 206 for a Range) with its git blob id as
  ETag; an LFS file answers 302 to a signed URL on a second server (the
  "storage", another port), with ``X-Linked-Etag`` (the sha256) and
  ``X-Linked-Size``; both carry ``X-Repo-Commit``. A renamed repository
  answers 307 with a relative Location.
- ``GET /api/{models,datasets,spaces}/ORG/NAME/tree/REV[/PATH]``
  (``?recursive=true``): JSON pages of ``page_size`` entries, the next one
  named by ``Link: <URL>; rel="next"`` (on the origin the request named
  in Host, or on ``link_base`` if set).
- Errors as the Hub sends them, with ``X-Error-Code`` and
  ``X-Error-Message``: 401 RepoNotFound for a private (or unknown) repo
  without a valid token, 404 RevisionNotFound / EntryNotFound.

The storage server honours Range, sends its own (different) ETag, and like
S3 refuses a presigned URL that also carries an Authorization header (400);
it counts such attempts in ``auth_leaks``.

    with HFServer(token="hf_x") as hub:
        hub.add("dataset", "org/data", "a/b.bin", payload)   # LFS if big
        env = {"HF_ENDPOINT": hub.endpoint, "HF_TOKEN": "hf_x"}

Requests are counted per server and method in ``hub.counts`` and
``hub.storage_counts``.
"""

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

LFS_THRESHOLD = 10 * 1024
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
_KINDS = {"model": "models", "dataset": "datasets", "space": "spaces"}
_PREFIX = {"dataset": "datasets/", "space": "spaces/", "model": ""}


def git_oid(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class _File:
    def __init__(self, data, lfs):
        self.data = data
        self.lfs = lfs
        self.oid = git_oid(data)
        self.sha256 = hashlib.sha256(data).hexdigest()


class _Repo:
    def __init__(self, private):
        self.private = private
        self.revisions = {"main": {}}
        self.commits = 0


class HFServer:
    def __init__(self, token=None, page_size=50):
        self.token = token
        self.page_size = page_size
        self.link_base = None  # Link URLs on this origin (default: Host)
        self.repos = {}      # (kind, "org/name") -> _Repo
        self.renamed = {}    # (kind, old id) -> new id
        self.blobs = {}      # sha256 -> bytes, served by the storage
        self.counts = {}
        self.storage_counts = {}
        self.auth_leaks = 0
        self.lock = threading.Lock()
        self.hub = self.storage = None

    # ---- content -----------------------------------------------------------

    def add(self, kind, repo_id, path, data, lfs=None, revision="main",
            private=False):
        """Add (or replace) a file; LFS by default from LFS_THRESHOLD."""
        with self.lock:
            repo = self.repos.setdefault((kind, repo_id), _Repo(private))
            repo.private = repo.private or private
            files = repo.revisions.setdefault(revision, {})
            lfs = len(data) >= LFS_THRESHOLD if lfs is None else lfs
            f = _File(bytes(data), lfs)
            files[path] = f
            repo.commits += 1
            if lfs:
                self.blobs[f.sha256] = f.data
            return f

    def rename(self, kind, old_id, new_id):
        self.renamed[(kind, old_id)] = new_id

    def reset_counts(self):
        with self.lock:
            self.counts.clear()
            self.storage_counts.clear()

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.hub.server_address[1]

    @property
    def storage_url(self):
        return "http://127.0.0.1:%d" % self.storage.server_address[1]

    # ---- life ----------------------------------------------------------------

    def _serve(self, handler):
        class Handler(handler):
            pass
        Handler.owner = self
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    def start(self):
        self.hub = self._serve(_HubHandler)
        self.storage = self._serve(_StorageHandler)
        return self

    def stop(self):
        for server in (self.hub, self.storage):
            if server:
                server.shutdown()
                server.server_close()
        self.hub = self.storage = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class _Base(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner = None
    counter = "counts"

    def log_message(self, *args):
        pass

    def _count(self):
        with self.owner.lock:
            counts = getattr(self.owner, self.counter)
            counts[self.command] = counts.get(self.command, 0) + 1

    def _send(self, status, headers, body=b""):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    def _error(self, status, code, message):
        body = json.dumps({"error": message}).encode()
        self._send(status, [("X-Error-Code", code),
                            ("X-Error-Message", message),
                            ("Content-Type", "application/json")], body)

    def _ranged(self, data, headers):
        """200 with the whole body, or 206 for a satisfiable Range."""
        m = _RANGE.match(self.headers.get("Range", "").strip())
        if not m:
            self._send(200, headers, data)
            return
        first = int(m.group(1))
        last = int(m.group(2)) if m.group(2) else len(data) - 1
        last = min(last, len(data) - 1)
        if first >= len(data) or first > last:
            self._send(416, headers + [
                ("Content-Range", "bytes */%d" % len(data))])
            return
        self._send(206, headers + [
            ("Content-Range", "bytes %d-%d/%d" % (first, last, len(data)))],
            data[first:last + 1])


class _HubHandler(_Base):
    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        self._count()
        url = urlsplit(self.path)
        parts = url.path.lstrip("/").split("/")
        if parts[0] == "api":
            self._tree(parts[1:], parse_qs(url.query))
        else:
            self._resolve(parts)

    def _authorised(self, repo):
        token = self.owner.token
        sent = self.headers.get("Authorization")
        return not repo.private or (token and sent == "Bearer " + token)

    def _find_repo(self, kind, repo_id, rest_of_path):
        """The repo, or None after answering (error or rename)."""
        new_id = self.owner.renamed.get((kind, repo_id))
        if new_id and self.command in ("GET", "HEAD"):
            location = "/" + _PREFIX[kind] + new_id + "/" + rest_of_path
            if kind and rest_of_path.startswith("tree/"):
                location = "/api/%s/%s/%s" % (_KINDS[kind], new_id,
                                              rest_of_path)
            self._send(307, [("Location", location)])
            return None
        repo = self.owner.repos.get((kind, repo_id))
        if repo is None or not self._authorised(repo):
            self._error(401, "RepoNotFound", "Repository not found")
            return None
        return repo

    def _files(self, repo, revision):
        files = repo.revisions.get(revision)
        if files is None:
            self._error(404, "RevisionNotFound",
                        "Invalid rev id: %s" % revision)
        return files

    def _resolve(self, parts):
        kind = {"datasets": "dataset", "spaces": "space"}.get(parts[0])
        if kind:
            parts = parts[1:]
        kind = kind or "model"
        if len(parts) < 5 or parts[2] != "resolve":
            self._error(404, "EntryNotFound", "Not found")
            return
        repo_id = "/".join(parts[:2])
        rest = "/".join(parts[2:])
        repo = self._find_repo(kind, repo_id, rest)
        if repo is None:
            return
        files = self._files(repo, unquote(parts[3]))
        if files is None:
            return
        f = files.get(unquote("/".join(parts[4:])))
        if f is None:
            self._error(404, "EntryNotFound", "Entry not found")
            return
        commit = "%040x" % repo.commits
        if f.lfs:
            location = "%s/repos/%s?sig=%s" % (self.owner.storage_url,
                                               f.sha256, f.sha256[:8])
            self._send(302, [("Location", location),
                             ("ETag", '"%s"' % f.oid),
                             ("X-Linked-Etag", '"%s"' % f.sha256),
                             ("X-Linked-Size", str(len(f.data))),
                             ("X-Repo-Commit", commit)])
            return
        self._ranged(f.data, [("ETag", '"%s"' % f.oid),
                              ("X-Repo-Commit", commit)])

    def _tree(self, parts, query):
        kind = {v: k for k, v in _KINDS.items()}.get(parts[0] if parts else "")
        if not kind or len(parts) < 5 or parts[3] != "tree":
            self._error(404, "EntryNotFound", "Not found")
            return
        repo_id = "/".join(parts[1:3])
        repo = self._find_repo(kind, repo_id, "/".join(parts[3:]))
        if repo is None:
            return
        files = self._files(repo, unquote(parts[4]))
        if files is None:
            return
        base = unquote("/".join(parts[5:])).strip("/")
        recursive = query.get("recursive", ["false"])[0].lower() == "true"
        entries = _tree_entries(files, base, recursive)
        if entries is None:
            self._error(404, "EntryNotFound",
                        "%s does not exist on \"%s\"" % (base, parts[4]))
            return
        self._page(entries, query)

    def _page(self, entries, query):
        size = self.owner.page_size
        start = int(query.get("cursor", ["0"])[0])
        headers = [("Content-Type", "application/json")]
        if start + size < len(entries):
            next_query = "cursor=%d" % (start + size)
            if "recursive" in query:
                next_query += "&recursive=" + query["recursive"][0]
            base = self.owner.link_base or "http://" + self.headers["Host"]
            url = "%s%s?%s" % (base, urlsplit(self.path).path, next_query)
            headers.append(("Link", '<%s>; rel="next"' % url))
        body = json.dumps(entries[start:start + size]).encode()
        self._send(200, headers, body)


def _tree_entries(files, base, recursive):
    """What the tree API lists under base, or None if it does not exist."""
    prefix = base + "/" if base else ""
    out, dirs = [], set()
    for path in sorted(files):
        if not path.startswith(prefix):
            continue
        rest = path[len(prefix):]
        segments = rest.split("/")
        for depth in range(1, len(segments)):
            d = prefix + "/".join(segments[:depth])
            if (recursive or depth == 1) and d not in dirs:
                dirs.add(d)
                out.append({"type": "directory", "oid": git_oid(d.encode()),
                            "size": 0, "path": d})
        if recursive or len(segments) == 1:
            f = files[path]
            entry = {"type": "file", "oid": f.oid, "size": len(f.data),
                     "path": path}
            if f.lfs:
                entry["lfs"] = {"oid": f.sha256, "size": len(f.data),
                                "pointerSize": 134}
            out.append(entry)
    if not out and base:
        return None
    return out


class _StorageHandler(_Base):
    counter = "storage_counts"

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        self._count()
        url = urlsplit(self.path)
        if "Authorization" in self.headers:
            with self.owner.lock:
                self.owner.auth_leaks += 1
            self._send(400, [], b"<Error><Code>InvalidArgument</Code>"
                       b"<Message>Only one auth mechanism allowed</Message>"
                       b"</Error>")
            return
        sha = url.path.rsplit("/", 1)[-1]
        data = self.owner.blobs.get(sha)
        if data is None or parse_qs(url.query).get("sig") != [sha[:8]]:
            self._send(403, [], b"<Error><Code>AccessDenied</Code></Error>")
            return
        etag = '"%s"' % hashlib.md5(data).hexdigest()
        self._ranged(data, [("ETag", etag)])


def resolve_path(kind, repo_id, revision, path):
    """The resolve path huggingface_hub's hf_hub_url builds."""
    return "/%s%s/resolve/%s/%s" % (_PREFIX[kind], repo_id,
                                    quote(revision, safe=""), quote(path))
