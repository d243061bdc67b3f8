"""``pagemesh.PagemeshFileSystem``: an fsspec filesystem (protocol
``pagemesh``) that reads any origin libpagemesh knows through the node
peer of the machine.

    fs = fsspec.filesystem("pagemesh", target_protocol="s3",
                           target_options={"endpoint_url": ..., "key": ...,
                                           "secret": ...})
    fs.cat_file("bucket/train/part-0.parquet", start=0, end=4096)
    pyarrow.parquet.read_table("bucket/train", filesystem=fs)
    fsspec.open("pagemesh::s3://bucket/key", s3={...}).open().read()

Paths are those of the target filesystem ("bucket/key" for S3, absolute
paths for local files, whole URLs for HTTP). Reads and metadata are served
natively by the C library: ``info`` (pm_stat, from the metadata cache),
``ls``/``find``/``glob`` (pm_list; listings are also kept here for
``listings_expiry_time`` seconds, so that a second epoch does not list the
origin again), ``cat_file``, ``cat_ranges`` (one pm_read_batch for all
ranges), ``open("rb")`` (a seekable file read with pm_read). Writes and
mutations (``open("wb")``, ``pipe``, ``put``, ``rm``, ``mv``, ``copy``,
``mkdir``...) go to the target filesystem itself
(``fsspec.filesystem(target_protocol, **target_options)``, e.g. s3fs),
then invalidate what they touched.

Credentials: the origin is read by the node peer, with the credentials of
*its* environment when it opened. Before its first read, a filesystem
exports the S3 credentials, endpoint and region found in ``target_options``
to ``AWS_*`` variables of its own process, so that whichever process
becomes the node peer uses them; a node peer already running elsewhere
(``pagemeshd``, another job) keeps the credentials it was started with,
and so does this process's own peer once open: a later filesystem on the
same cache with other credentials gets a RuntimeWarning saying so.

A filesystem pickles to its constructor arguments: unpickled in another
process (a Ray task, a DataLoader worker) it attaches to that machine's
node peer on first use.
"""

from __future__ import annotations

import datetime
import errno
import hashlib
import os
import re
import threading
import time
import warnings
import weakref
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import fsspec
from fsspec.implementations.local import make_path_posix
from fsspec.utils import stringify_path, tokenize

from . import _lib
from .errors import FileExpired, PagemeshError
from .file import DEFAULT_BLOCK_SIZE, InvalidatingWriter, PagemeshFile
from .peer import PEER_OPTIONS, ObjectStat, Peer, shared_peer

try:  # fsspec >= 2025.10: hands chained filesystems the inner path
    from fsspec.implementations.chained import ChainedFileSystem as _Base
except ImportError:  # pragma: no cover - older fsspec
    from fsspec import AbstractFileSystem as _Base

Info = Dict[str, Any]

_SCHEME_RE = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
# fsspec protocol -> libpagemesh URI scheme
_URI_SCHEMES = {"s3": "s3", "s3a": "s3", "gs": "gs", "gcs": "gs",
                "az": "az", "abfs": "az", "hf": "hf"}
_CLAMP_RANGES_OVER = 64 << 20
_LOCAL = ("file", "local")
_HTTP = ("http", "https")
DEFAULT_LISTINGS_EXPIRY = 60.0


# "::" joining the links of an fsspec chain; one followed by "]" before any
# "[" is inside an IPv6 host ("http://[::1]:8080/k"), not a link.
_CHAIN_RE = re.compile(r"::(?![^\[]*\])")


def _last_chain_link(path: str) -> str:
    """The last URL of an fsspec chain ("simplecache::pagemesh::s3://b/k"
    gives "s3://b/k")."""
    return _CHAIN_RE.split(path)[-1]


def _s3_environment(options: Dict[str, Any]) -> Dict[str, str]:
    """AWS_* variables equivalent to s3fs-style target_options."""
    client = options.get("client_kwargs") or {}
    values = {
        "AWS_ACCESS_KEY_ID": options.get("key")
        or options.get("aws_access_key_id") or client.get(
            "aws_access_key_id"),
        "AWS_SECRET_ACCESS_KEY": options.get("secret")
        or options.get("aws_secret_access_key") or client.get(
            "aws_secret_access_key"),
        "AWS_SESSION_TOKEN": options.get("token")
        or options.get("aws_session_token"),
        "AWS_ENDPOINT_URL": options.get("endpoint_url")
        or client.get("endpoint_url"),
        "AWS_REGION": client.get("region_name") or options.get("region")
        or options.get("region_name"),
        "AWS_PROFILE": options.get("profile"),
    }
    return {k: str(v) for k, v in values.items() if v}


# What each shared peer was opened with: the AWS_* values the filesystem
# that opened it exported (by id of the peer).
_opened_with: Dict[int, Dict[str, str]] = {}


def _check_credentials(peer: Peer, exported: Dict[str, str]) -> None:
    """Warn when a filesystem brings other credentials than those its
    process's peer opened with: the peer keeps its own (its origin
    connectors read them once), so reads would still use the old ones."""
    first = _opened_with.setdefault(id(peer), dict(exported))
    if exported and exported != first:
        changed = sorted(k for k in set(first) | set(exported)
                         if first.get(k) != exported.get(k))
        warnings.warn(
            "pagemesh: the peer of %s opened with other %s; it keeps "
            "those for its reads (writes use the new ones). Read with "
            "these in a new process, or with another cache_dir."
            % (peer.options.get("cache_dir") or "the default cache",
               ", ".join(changed)), RuntimeWarning, stacklevel=3)
        _opened_with[id(peer)] = dict(exported)  # warn once per change


class _Listings:
    """Listings (flat and recursive) kept for `ttl` seconds."""

    def __init__(self, ttl: float):
        self.ttl = ttl
        self._lock = threading.Lock()
        self._data: Dict[Tuple[str, bool], Tuple[float, List[Info]]] = {}

    def get(self, path: str, recursive: bool) -> Optional[List[Info]]:
        if self.ttl <= 0:
            return None
        with self._lock:
            hit = self._data.get((path, recursive))
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, path: str, recursive: bool, infos: List[Info]) -> None:
        if self.ttl > 0:
            with self._lock:
                self._data[(path, recursive)] = (time.monotonic() + self.ttl,
                                                 infos)

    def lookup(self, path: str) -> Optional[Info]:
        """The info of `path` if a fresh listing knows it."""
        for recursive in (False, True):
            infos = self.get(path, recursive)
            if not infos:
                continue
            # A listing of an object is the object itself; a listing with
            # any other name in it is a directory's.
            if any(info["name"] != path for info in infos):
                return {"name": path, "size": 0, "type": "directory"}
            return infos[0]
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        for info in self.get(parent, False) or ():
            if info["name"] == path:
                return info
        return None

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


# fsspec makes one instance per thread (its instance token holds the
# thread's id): the instances of one filesystem share their listings, so
# that a write in one thread is not hidden from another by a listing it
# kept. Keyed by what the filesystem reads (target and peer options).
_listings_of: "weakref.WeakValueDictionary[str, _Listings]" = \
    weakref.WeakValueDictionary()
_listings_lock = threading.Lock()


def _shared_listings(identity: Any, ttl: float) -> _Listings:
    key = tokenize(identity, ttl)
    with _listings_lock:
        listings = _listings_of.get(key)
        if listings is None:
            listings = _listings_of[key] = _Listings(ttl)
        return listings


class PagemeshFileSystem(_Base):
    """fsspec filesystem reading through the pagemesh node peer.

    Parameters
    ----------
    target_protocol: the origin's fsspec protocol: "s3" (also "s3a"),
        "http"/"https", or "file" (the default).
    target_options: options of the target filesystem (s3fs's ``key``,
        ``secret``, ``token``, ``endpoint_url``, ``client_kwargs``...): used
        for writes, and for the S3 credentials of the node peer.
    cache_dir, disk_capacity, ram_capacity, page_size, eviction,
    meta_ttl_ms, readahead_pages, io_threads, origin_timeout_ms,
    origin_retries: peer options (see :class:`pagemesh.Peer`); unset ones
        come from ``PAGEMESH_*`` variables. Only the cache directory matters
        to a process that attaches to a running node peer.
    block_size: read-ahead block of opened files (default 64 KiB).
    cache_type: fsspec cache of opened files ("readahead", "none",
        "bytes", ...).
    listings_expiry_time: seconds a listing is reused (default 60; 0 never
        reuses).
    """

    protocol = "pagemesh"
    root_marker = ""
    cachable = True
    # A chained URL's "fo" (the path) is not part of the instance's identity.
    _strip_tokenize_options = ("fo",)

    def __init__(self, target_protocol: Optional[str] = None,
                 target_options: Optional[Dict[str, Any]] = None,
                 fo: Optional[str] = None,
                 block_size: Optional[int] = None,
                 cache_type: str = "readahead",
                 listings_expiry_time: Optional[float] = None,
                 **kwargs: Any):
        self.peer_options = {k: kwargs.pop(k) for k in list(kwargs)
                             if k in PEER_OPTIONS}
        super().__init__(**kwargs)
        self.target_protocol = target_protocol or "file"
        self.target_options = dict(target_options or {})
        self.block_size = block_size or DEFAULT_BLOCK_SIZE
        self.cache_type = cache_type
        self._listings = _shared_listings(
            (self.target_protocol, self.target_options, self.peer_options),
            DEFAULT_LISTINGS_EXPIRY if listings_expiry_time is None
            else listings_expiry_time)
        self._peer: Optional[Peer] = None
        self._peer_pid = 0
        self._target: Optional[fsspec.AbstractFileSystem] = None
        if self.target_protocol in _LOCAL:
            # Local paths are made absolute, "~" expanded, as fsspec's
            # local filesystem does: the names listings give back are.
            self._strip_protocol = self._strip_local  # type: ignore
        elif self.target_protocol not in _HTTP:
            self._strip_protocol = self._strip_target  # type: ignore

    # ---- the peer and the target ------------------------------------------

    @property
    def peer(self) -> Peer:
        """This process's peer (opened on first use, after a fork again)."""
        peer = self._peer
        if peer is None or peer.closed or self._peer_pid != os.getpid():
            exported: Dict[str, str] = {}
            if self.target_protocol in ("s3", "s3a"):
                exported = _s3_environment(self.target_options)
                os.environ.update(exported)
            peer = shared_peer(**self.peer_options)
            self._peer, self._peer_pid = peer, os.getpid()
            _check_credentials(peer, exported)
        return peer

    @property
    def target(self) -> fsspec.AbstractFileSystem:
        """The origin's own fsspec filesystem (writes go there)."""
        if self._target is None:
            self._target = fsspec.filesystem(self.target_protocol,
                                             **self.target_options)
        return self._target

    def stats(self) -> Dict[str, int]:
        """This process's peer counters (see :meth:`Peer.stats`)."""
        return self.peer.stats()

    def status(self) -> Dict[str, Any]:
        """The node peer's status (see :meth:`Peer.status`)."""
        return self.peer.status()

    # ---- paths ----------------------------------------------------------------

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, (list, tuple)):
            return [cls._strip_protocol(p) for p in path]
        path = _last_chain_link(stringify_path(path))
        if path.startswith("pagemesh://"):
            path = path[len("pagemesh://"):]
        match = _SCHEME_RE.match(path)
        if match and match.group(1).lower() not in _HTTP:
            path = path[match.end():]
        stripped = path.rstrip("/")
        if not stripped and path.startswith("/"):
            return "/"
        return stripped

    def _check_scheme(self, path: Any, allowed: Sequence[str]) -> None:
        """A URL of another origin than the target is refused: it would
        otherwise be read as a path of the target (gs://b/k as s3://b/k,
        s3://b/k as the local file ./b/k)."""
        link = _last_chain_link(stringify_path(path))
        if link.startswith("pagemesh://"):
            link = link[len("pagemesh://"):]
        match = _SCHEME_RE.match(link)
        if match and match.group(1).lower() not in allowed:
            raise ValueError("%s is not a path of this pagemesh filesystem "
                             "(its target is %s://): make one with "
                             "target_protocol=%r"
                             % (link, self.target_protocol,
                                match.group(1).lower()))

    def _strip_target(self, path: Any) -> Any:
        """_strip_protocol of a filesystem over an object store."""
        if isinstance(path, (list, tuple)):
            return [self._strip_target(p) for p in path]
        scheme = _URI_SCHEMES.get(self.target_protocol, self.target_protocol)
        self._check_scheme(path, [k for k, v in _URI_SCHEMES.items()
                                  if v == scheme] + [self.target_protocol])
        # "/bucket/key" is "bucket/key", as s3fs takes it: the names that
        # listings give back have no leading "/"
        return type(self)._strip_protocol(path).lstrip("/")

    def _strip_local(self, path: Any) -> Any:
        """_strip_protocol of a filesystem over local files."""
        if isinstance(path, (list, tuple)):
            return [self._strip_local(p) for p in path]
        self._check_scheme(path, _LOCAL)
        path = type(self)._strip_protocol(path)
        if not path:
            return path
        # "." and ".." resolved, as the peer resolves them: the names that
        # listings give back are of that form
        return os.path.normpath(make_path_posix(path))

    @staticmethod
    def _get_kwargs_from_urls(path: str) -> Dict[str, Any]:
        return {}

    def unstrip_protocol(self, name: str) -> str:
        return "pagemesh::%s" % self._target_url(name)

    def _target_url(self, path: str) -> str:
        if self.target_protocol in _HTTP:
            return path
        return "%s://%s" % (self.target_protocol, path)

    def _uri(self, path: str) -> str:
        """The libpagemesh URI of a path of this filesystem."""
        path = self._strip_protocol(path)
        protocol = self.target_protocol
        if protocol in _HTTP:
            return path
        if protocol in _LOCAL:
            return os.path.abspath(path) if path else "/"
        # "/bucket/key" is "bucket/key", as s3fs takes it
        return "%s://%s" % (_URI_SCHEMES.get(protocol, protocol),
                            path.lstrip("/"))

    def _path(self, uri: str) -> str:
        """The path of this filesystem for a libpagemesh URI."""
        if self.target_protocol in _HTTP:
            return uri.rstrip("/")
        if uri.startswith("file://"):
            uri = uri[len("file://"):]
        else:
            match = _SCHEME_RE.match(uri)
            if match:
                uri = uri[match.end():]
        return uri.rstrip("/") or "/"

    # ---- metadata --------------------------------------------------------------

    def _file_info(self, path: str, st: ObjectStat) -> Info:
        return {"name": path, "size": st.size, "type": "file",
                "mtime": st.mtime_ns / 1e9 if st.mtime_ns else None,
                "version": st.version, "ETag": st.version}

    def _entry_info(self, entry: Any) -> Info:
        path = self._path(entry.uri)
        if entry.is_dir:
            return {"name": path, "size": 0, "type": "directory"}
        return self._file_info(path, ObjectStat(entry.size, entry.mtime_ns,
                                                entry.version or ""))

    def _listing(self, path: str, recursive: bool) -> List[Info]:
        """pm_list of a path, reused while fresh; FileNotFoundError if
        nothing is there."""
        infos = self._listings.get(path, recursive)
        if infos is None:
            entries = self.peer.ls(self._uri(path), recursive=recursive)
            infos = [self._entry_info(e) for e in entries]
            self._listings.put(path, recursive, infos)
        return infos

    # fsspec's own exists/isdir/isfile take any failure for "not there";
    # a refusal (PermissionError) or an unreachable origin is raised, as
    # s3fs does, so that bad credentials do not pass for missing data.
    def _kind(self, path: str) -> Optional[str]:
        """"file", "directory", or None if there is nothing (or the path
        names nothing an origin has)."""
        try:
            return self.info(path)["type"]
        except FileNotFoundError:
            return None
        except PagemeshError as e:
            if e.code == _lib.PM_EBADURI:
                return None
            raise

    def exists(self, path: str, **kwargs: Any) -> bool:
        return self._kind(path) is not None

    def isdir(self, path: str) -> bool:
        return self._kind(path) == "directory"

    def isfile(self, path: str) -> bool:
        return self._kind(path) == "file"

    def info(self, path: str, **kwargs: Any) -> Info:
        path = self._strip_protocol(path)
        known = self._listings.lookup(path)
        if known is not None:
            return dict(known)
        try:
            return self._file_info(path, self.peer.stat(self._uri(path)))
        except FileNotFoundError:
            if self.target_protocol in _HTTP:
                raise  # a URL is an object or nothing: no listing to ask
        except PagemeshError as e:
            if e.code not in (_lib.PM_EBADURI, _lib.PM_EINVAL):
                raise
        # A directory: a listing already made tells, else one entry of a
        # new one does (a prefix of a million objects is not listed whole
        # to learn that it exists). An existing empty directory lists
        # nothing; a missing one raises FileNotFoundError.
        infos = self._listings.get(path, False)
        if infos is None:
            infos = [self._entry_info(e) for e in
                     self.peer.ls(self._uri(path), first=True)]
        if len(infos) == 1 and infos[0]["name"] == path:
            return infos[0]
        return {"name": path, "size": 0, "type": "directory"}

    def ls(self, path: str, detail: bool = True,
           **kwargs: Any) -> Union[List[Info], List[str]]:
        path = self._strip_protocol(path)
        if kwargs.get("refresh"):
            self._listings.clear()
        if path in ("", "/") and self.target_protocol in _URI_SCHEMES:
            # The buckets (containers, repositories): the origin's own
            # filesystem lists them, as s3fs's ls("") does; no page of
            # them is cached.
            infos = self.target.ls("", detail=True)
            return infos if detail else [i["name"] for i in infos]
        infos = [dict(i) for i in self._listing(path, recursive=False)]
        return infos if detail else [i["name"] for i in infos]

    def find(self, path: str, maxdepth: Optional[int] = None,
             withdirs: bool = False, detail: bool = False,
             **kwargs: Any) -> Union[Dict[str, Info], List[str]]:
        """Every object below `path` with one recursive pm_list (directories
        too if `withdirs`, derived from the objects' names)."""
        if maxdepth is not None and maxdepth < 1:
            raise ValueError("maxdepth must be at least 1")
        path = self._strip_protocol(path)
        try:
            files = self._listing(path, recursive=True)
        except FileNotFoundError:
            files = []
        base = "" if path == "/" else path
        out: Dict[str, Info] = {}
        for info in files:
            name = info["name"]
            if name == path:  # `path` is an object
                out[name] = dict(info)
                continue
            parts = name[len(base) + 1:].split("/")
            if withdirs:
                for depth in range(1, min(len(parts), (maxdepth or
                                                        len(parts))) + 1):
                    if depth < len(parts):
                        d = "/".join([base] + parts[:depth])
                        out.setdefault(d, {"name": d, "size": 0,
                                           "type": "directory"})
            if maxdepth is None or len(parts) <= maxdepth:
                out[name] = dict(info)
        if withdirs and self.target_protocol in _LOCAL:
            # Directories without files below them are on disk too.
            for d in self._local_dirs(path, maxdepth):
                out.setdefault(d, {"name": d, "size": 0,
                                   "type": "directory"})
        if withdirs and files and path not in out:
            out[path] = {"name": path, "size": 0, "type": "directory"}
        names = sorted(out)
        if detail:
            return {name: out[name] for name in names}
        return names

    @staticmethod
    def _local_dirs(path: str, maxdepth: Optional[int]) -> List[str]:
        """Directories below a local directory, to maxdepth."""
        found = []
        top = path.rstrip("/").count("/")
        for root, dirs, _ in os.walk(path):
            depth = root.rstrip("/").count("/") - top + 1
            found += [os.path.join(root, d) for d in dirs]
            if maxdepth is not None and depth >= maxdepth:
                dirs[:] = []
        return found

    def ukey(self, path: str) -> str:
        """A key that changes whenever the object does (its version)."""
        info = self.info(path)
        text = "%s\0%s\0%s" % (self._uri(path), info.get("version", ""),
                               info["size"])
        return hashlib.sha256(text.encode()).hexdigest()

    def checksum(self, path: str) -> int:
        return int(self.ukey(path)[:16], 16)

    def modified(self, path: str) -> datetime.datetime:
        info = self.info(path)
        if info["type"] == "directory":
            # A local directory has one; a prefix of an object store has
            # not (s3fs raises the same).
            if self.target_protocol in _LOCAL:
                return self.target.modified(info["name"])
            raise IsADirectoryError(path)
        mtime = info.get("mtime")
        if not mtime:
            raise NotImplementedError("the origin gives no mtime for %s"
                                      % path)
        return datetime.datetime.fromtimestamp(mtime, datetime.timezone.utc)

    # ---- reading ---------------------------------------------------------------

    def _sized(self, start: Optional[int], end: Optional[int]) -> bool:
        """Whether [start, end) in fsspec's terms depends on the size."""
        start = start or 0
        return (end is None or start < 0 or end < 0
                or end - start > _CLAMP_RANGES_OVER)

    def _resolve_range(self, path: str, start: Optional[int],
                       end: Optional[int], stats: Dict[str, ObjectStat]
                       ) -> Tuple[int, int]:
        """Absolute [start, end) of a range given fsspec-style (None,
        negative from the end), with stats[path] the stat whose size it
        used (when _sized)."""
        start = start or 0
        # A range much larger than a read's usual size is clamped to the
        # object (a buffer of `end - start` bytes is allocated for it).
        if self._sized(start, end):
            if path not in stats:
                stats[path] = self.peer.stat(self._uri(path))
            size = stats[path].size
            if start < 0:
                start = max(0, size + start)
            end = size if end is None else (size + end if end < 0 else end)
            end = min(end, size)
        return start, max(start, end)

    def _read_sized(self, path: str, start: Optional[int],
                    end: Optional[int]) -> bytes:
        """A range that depends on the object's size, read pinned to the
        version that size is of: an object that changed meanwhile is read
        again (its new size, its new bytes), never cut or shifted."""
        uri = self._uri(path)
        for attempt in range(3):
            stats: Dict[str, ObjectStat] = {}
            lo, hi = self._resolve_range(path, start, end, stats)
            if hi == lo:
                return b""
            try:
                return self.peer.read(uri, lo, hi - lo,
                                      version=stats[path].version)
            except FileExpired:
                if attempt == 2:
                    raise
                self.peer.invalidate(uri)
        raise AssertionError("unreachable")

    def _not_found(self, path: str, error: FileNotFoundError) -> OSError:
        """What a read of `path` that found no object raises: a local
        directory is IsADirectoryError (as the local filesystem's open
        raises), anything else `error`."""
        if self.target_protocol in _LOCAL and os.path.isdir(path):
            return IsADirectoryError(errno.EISDIR, "Is a directory", path)
        return error

    def cat_file(self, path: str, start: Optional[int] = None,
                 end: Optional[int] = None, **kwargs: Any) -> bytes:
        path = self._strip_protocol(path)
        try:
            if self._sized(start, end):
                return self._read_sized(path, start, end)
            start, end = self._resolve_range(path, start, end, {})
            if end == start:
                return b""
            return self.peer.read(self._uri(path), start, end - start)
        except FileNotFoundError as e:
            raise self._not_found(path, e) from None

    def cat_ranges(self, paths: List[str], starts: Any, ends: Any,
                   max_gap: Optional[int] = None, on_error: str = "return",
                   **kwargs: Any) -> List[Union[bytes, BaseException]]:
        """Many ranges of many objects in one pm_read_batch. A range that
        runs to the end is asked one byte longer than its object's stat
        says, so that an object that grew since shows (the byte comes
        back) and is read again pinned to one version; a range counted
        from the end is read pinned to the version of its size."""
        if max_gap is not None:
            raise NotImplementedError("max_gap: pm_read_batch already "
                                      "fetches each page once")
        if not isinstance(paths, list):
            raise TypeError("paths must be a list")
        if not isinstance(starts, list):
            starts = [starts] * len(paths)
        if not isinstance(ends, list):
            ends = [ends] * len(paths)
        if len(starts) != len(paths) or len(ends) != len(paths):
            raise ValueError("paths, starts and ends differ in length")
        stats: Dict[str, ObjectStat] = {}
        ranges: List[Tuple[str, int, int]] = []
        failed: Dict[int, BaseException] = {}
        again: Dict[int, Tuple[str, Optional[int], Optional[int]]] = {}
        for i, (path, start, end) in enumerate(zip(paths, starts, ends)):
            path = self._strip_protocol(path)
            lo = hi = 0
            try:
                if self._sized(start, end) and not (
                        end is None and (start or 0) >= 0):
                    again[i] = (path, start, end)  # from the end: pinned
                else:
                    lo, hi = self._resolve_range(path, start, end, stats)
                    if end is None and hi > lo:
                        hi += 1  # to the end: one byte to see growth
            except OSError as e:
                if on_error != "return":
                    raise
                failed[i] = e
            ranges.append((self._uri(path), lo, hi - lo))
        results = self.peer.read_batch(ranges,
                                       return_exceptions=on_error == "return")
        for i, (uri, lo, length) in enumerate(ranges):
            data = results[i]
            if ends[i] is None and length and isinstance(data, bytes):
                if len(data) == length:  # grew since its stat
                    again[i] = (self._strip_protocol(paths[i]), starts[i],
                                None)
        for i, (path, start, end) in again.items():
            try:
                results[i] = self._read_sized(path, start, end)
            except OSError as e:
                if on_error != "return":
                    raise
                results[i] = e
        for i, exc in failed.items():
            results[i] = exc
        return results

    def cat(self, path: Any, recursive: bool = False, on_error: str = "raise",
            **kwargs: Any) -> Any:
        """Whole objects (or the same range of each: start, end); several
        at once are read in one batch."""
        paths = self.expand_path(path, recursive=recursive)
        single = (len(paths) == 1 and not isinstance(path, list)
                  and paths[0] == self._strip_protocol(path))
        if single:
            return self.cat_file(paths[0], **kwargs)
        results = self.cat_ranges(list(paths), kwargs.get("start"),
                                  kwargs.get("end"), on_error="return")
        out = {}
        for p, r in zip(paths, results):
            if isinstance(r, BaseException):
                if on_error == "raise":
                    raise r
                if on_error == "omit":
                    continue
            out[p] = r
        return out

    def _open(self, path: str, mode: str = "rb",
              block_size: Optional[int] = None, autocommit: bool = True,
              cache_options: Optional[dict] = None, **kwargs: Any) -> Any:
        if mode == "rb":
            return PagemeshFile(
                self, path, mode, block_size=block_size or self.block_size,
                cache_type=kwargs.pop("cache_type", self.cache_type),
                cache_options=cache_options, size=kwargs.get("size"))
        file = self.target.open(path, mode, block_size=block_size,
                                autocommit=autocommit,
                                cache_options=cache_options, **kwargs)
        return InvalidatingWriter(file, lambda: self._invalidate(path))

    # ---- writes and mutations: the target filesystem, then invalidate ------

    def _invalidate(self, *paths: Any) -> None:
        self._listings.clear()
        for path in paths:
            for p in (path if isinstance(path, (list, tuple)) else [path]):
                self.peer.invalidate(self._uri(p))

    def invalidate_cache(self, path: Optional[str] = None) -> None:
        """Forget listings, and the mesh's metadata of `path` (a prefix;
        everything below the root without one)."""
        self._listings.clear()
        self.peer.invalidate(self._uri("" if path is None else path))

    def _through(self, method: str, touched: Sequence[Any], *args: Any,
                 **kwargs: Any) -> Any:
        """`method` of the target with `args`, then the metadata of the
        `touched` paths invalidated. Callers pass paths of this filesystem
        through _strip_protocol first (pagemesh:// or chained URLs mean
        nothing to the target)."""
        try:
            return getattr(self.target, method)(*args, **kwargs)
        finally:
            self._invalidate(*touched)

    def pipe_file(self, path: str, value: bytes, **kwargs: Any) -> Any:
        path = self._strip_protocol(path)
        return self._through("pipe_file", [path], path, value, **kwargs)

    def pipe(self, path: Any, value: Optional[bytes] = None,
             **kwargs: Any) -> Any:
        if isinstance(path, dict):
            path = {self._strip_protocol(k): v for k, v in path.items()}
            touched = list(path)
        else:
            path = self._strip_protocol(path)
            touched = [path]
        return self._through("pipe", touched, path, value, **kwargs)

    def put_file(self, lpath: str, rpath: str, **kwargs: Any) -> Any:
        rpath = self._strip_protocol(rpath)
        return self._through("put_file", [rpath], lpath, rpath, **kwargs)

    def put(self, lpath: Any, rpath: Any, recursive: bool = False,
            **kwargs: Any) -> Any:
        rpath = self._strip_protocol(rpath)
        return self._through("put", [rpath], lpath, rpath,
                             recursive=recursive, **kwargs)

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> Any:
        path1, path2 = (self._strip_protocol(path1),
                        self._strip_protocol(path2))
        return self._through("cp_file", [path2], path1, path2, **kwargs)

    def copy(self, path1: Any, path2: Any, recursive: bool = False,
             **kwargs: Any) -> Any:
        path1, path2 = (self._strip_protocol(path1),
                        self._strip_protocol(path2))
        return self._through("copy", [path2], path1, path2,
                             recursive=recursive, **kwargs)

    def mv(self, path1: Any, path2: Any, recursive: bool = False,
           **kwargs: Any) -> Any:
        path1, path2 = (self._strip_protocol(path1),
                        self._strip_protocol(path2))
        return self._through("mv", [path1, path2], path1, path2,
                             recursive=recursive, **kwargs)

    def rm_file(self, path: str) -> Any:
        path = self._strip_protocol(path)
        return self._through("rm_file", [path], path)

    def _rm(self, path: str) -> Any:
        path = self._strip_protocol(path)
        return self._through("rm_file", [path], path)

    def rm(self, path: Any, recursive: bool = False,
           maxdepth: Optional[int] = None) -> Any:
        path = self._strip_protocol(path)
        return self._through("rm", [path], path, recursive=recursive,
                             maxdepth=maxdepth)

    def touch(self, path: str, truncate: bool = True, **kwargs: Any) -> Any:
        path = self._strip_protocol(path)
        return self._through("touch", [path], path, truncate=truncate,
                             **kwargs)

    def mkdir(self, path: str, create_parents: bool = True,
              **kwargs: Any) -> Any:
        path = self._strip_protocol(path)
        return self._through("mkdir", [path], path,
                             create_parents=create_parents, **kwargs)

    def makedirs(self, path: str, exist_ok: bool = False) -> Any:
        path = self._strip_protocol(path)
        return self._through("makedirs", [path], path, exist_ok=exist_ok)

    def rmdir(self, path: str) -> Any:
        path = self._strip_protocol(path)
        return self._through("rmdir", [path], path)
