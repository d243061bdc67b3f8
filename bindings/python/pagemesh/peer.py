"""``pagemesh.Peer``: a thin wrapper of one ``pm_peer`` of libpagemesh.

    with pagemesh.Peer(cache_dir="/mnt/nvme/pagemesh") as peer:
        data = peer.read("s3://bucket/key", offset=0, length=4096)
        parts = peer.read_batch([("s3://b/a", 0, 100), ("s3://b/b", 50, 10)])
        with peer.map("s3://bucket/key", 0, 4096) as m:
            header = bytes(m.data[:16])           # zero copy until here

The first process that opens a cache directory becomes its node peer;
later ones attach to it (see pagemesh.h). Options other than the cache
directory only matter to the process that becomes the node peer. So do the
origin credentials: the S3 backend reads ``AWS_*`` from the environment of
the node peer when it opens.

:func:`shared_peer` hands out one Peer per process and option set, opened
lazily and reopened in a child after ``fork`` (the parent's threads do not
survive a fork, so its handle is abandoned, never closed, there).
"""

from __future__ import annotations

import atexit
import ctypes
import errno
import json
import os
import re
import sys
import threading
from dataclasses import dataclass
from typing import (Any, Dict, Iterable, List, Optional, Sequence, Tuple,
                    Union)

from . import _lib
from .errors import FileExpired, error_from_code, raise_for

Size = Union[int, str]

# Reads of "the rest" of an object that met a change, tried again.
_CHANGED_RETRIES = 3

# As pagemeshd reads one: no spaces, "B"/"iB" only after a unit.
_SIZE_RE = re.compile(r"^(\d+)(?:([kmgt])(i?b?))?$", re.IGNORECASE)
_SIZE_SHIFT = {"": 0, "k": 10, "m": 20, "g": 30, "t": 40}


def parse_size(value: Size) -> int:
    """Bytes from an int or a string such as "64K", "20G", "1MiB"."""
    if isinstance(value, int):
        if value < 0:
            raise ValueError("negative size: %d" % value)
        return value
    match = _SIZE_RE.match(str(value))
    if not match:
        raise ValueError("%r is not a size (use 123, 64K, 8G...)" % value)
    return int(match.group(1)) << _SIZE_SHIFT[(match.group(2) or "").lower()]


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def parse_bool(key: str, value: Any) -> bool:
    """A boolean option: a bool, 0/1, or one of the words pagemeshd's
    configuration file takes ("false" is False, not a non-empty string)."""
    if isinstance(value, bool) or value in (0, 1):
        return bool(value)
    word = str(value).strip().lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise ValueError("%s: %r is not a boolean (use true or false)"
                     % (key, value))


@dataclass(frozen=True)
class ObjectStat:
    """An object's metadata: size in bytes, modification time (ns since
    the epoch, 0 if unknown) and version (ETag, or "mtime-size")."""
    size: int
    mtime_ns: int
    version: str


@dataclass(frozen=True)
class ListEntry:
    """One entry of :meth:`Peer.ls`: a full URI (directories end in '/')."""
    uri: str
    is_dir: bool
    size: int
    mtime_ns: int
    version: Optional[str]


# Keyword options of Peer and the pm_options fields they set.
_SIZE_OPTIONS = ("disk_capacity", "ram_capacity", "page_size")
_INT_OPTIONS = ("meta_ttl_ms", "readahead_pages", "io_threads",
                "origin_timeout_ms", "origin_retries", "replicas",
                "request_timeout_ms")
# the mesh (used by the node peer only)
_STRING_OPTIONS = ("listen", "seeds", "cluster_key_file", "cluster_id",
                   "transport", "transport_listen", "zone", "node_group")
# pm_options fields of 32 bits (the others are 64)
_U32_OPTIONS = ("page_size",) + _INT_OPTIONS
_FLAG_OPTIONS = {
    "verify_always": _lib.PM_OPEN_VERIFY_ALWAYS,
    "passthrough": _lib.PM_OPEN_PASSTHROUGH,
    "standalone": _lib.PM_OPEN_STANDALONE,
    "attach_only": _lib.PM_OPEN_ATTACH_ONLY,
    "node_only": _lib.PM_OPEN_NODE_ONLY,
    "insecure_data": _lib.PM_OPEN_INSECURE_DATA,
}
PEER_OPTIONS = (("cache_dir", "eviction") + _SIZE_OPTIONS + _INT_OPTIONS
                + _STRING_OPTIONS + tuple(_FLAG_OPTIONS))


def _encode(uri: str) -> bytes:
    return os.fsencode(uri)


def _check_range(offset: int, length: Optional[int]) -> None:
    """Offsets and lengths are unsigned in C: ctypes would wrap a
    negative one (read(uri, -1, 10) gave b"" with no error)."""
    if offset < 0 or (length is not None and length < 0):
        raise ValueError("negative offset or length: %d, %s"
                         % (offset, length))


class Mapping:
    """Cached bytes mapped without a copy (``pm_map``): ``data`` is a
    read-only memoryview, valid until :meth:`close` (or the end of a
    ``with`` block). If views derived from ``data`` (slices, numpy arrays)
    are still alive at close, the pages stay mapped until they are gone."""

    def __init__(self, peer: "Peer", uri: str, mapping: _lib.Mapping):
        self.uri = uri
        self._peer = peer
        self._mapping = mapping
        array_type = ctypes.c_char * mapping.length
        self._array = (array_type.from_address(mapping.data)
                       if mapping.length else array_type())
        self._unexported = _refcount(self._array)
        self.data: Optional[memoryview] = memoryview(self._array).toreadonly()

    def __len__(self) -> int:
        return self._mapping.length

    @property
    def in_use(self) -> bool:
        """Whether views of the mapped bytes are still alive."""
        return _refcount(self._array) > self._unexported

    def close(self) -> None:
        """Release the mapping (pm_unmap), once no view of it is left."""
        if self.data is None:
            return
        try:
            self.data.release()
        except BufferError:
            pass  # a consumer holds it (pyarrow.py_buffer): unmapped later
        self.data = None
        self._peer._release_mapping(self)

    def __enter__(self) -> "Mapping":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - never raise from a finaliser
            pass


def _refcount(obj: Any) -> int:
    return sys.getrefcount(obj)


class Peer:
    """One pm_peer: a node peer or a process attached to it.

    Keyword options (all optional; unset ones come from ``PAGEMESH_*``
    environment variables, then the library's defaults): ``cache_dir``,
    ``disk_capacity``, ``ram_capacity``, ``page_size`` (ints or "20G"
    strings), ``eviction`` ("stable" or "lru"), ``meta_ttl_ms``,
    ``readahead_pages``, ``io_threads``, ``origin_timeout_ms``,
    ``origin_retries``; the mesh: ``listen``, ``seeds`` (a string or a
    list), ``cluster_key_file``, ``cluster_id``, ``transport``,
    ``transport_listen``, ``zone``, ``replicas``, ``request_timeout_ms``;
    and the flags ``verify_always``, ``passthrough``, ``standalone``,
    ``attach_only``, ``node_only``, ``insecure_data`` (see pagemesh.h).

    Every method is safe from any thread. :meth:`close` waits for calls in
    flight and makes later calls raise ValueError.
    """

    def __init__(self, **options: Any):
        unknown = set(options) - set(PEER_OPTIONS)
        if unknown:
            raise TypeError("unknown Peer options: %s" % ", ".join(
                sorted(unknown)))
        self.options = dict(options)
        self.pid = os.getpid()
        self._keep: List[Any] = []
        opts = self._make_options(options)
        handle = ctypes.c_void_p()
        rc = _lib.lib.pm_peer_open(ctypes.byref(opts), ctypes.byref(handle))
        if rc < 0:
            raise error_from_code(rc, _lib.errmsg(None),
                                  options.get("cache_dir"))
        self._handle: Optional[int] = handle.value
        self._closed = False
        self._cond = threading.Condition()
        self._active = 0      # calls in flight
        self._mapped = 0      # mappings handed out and not yet unmapped
        self._deferred: List[Mapping] = []  # closed, views still alive

    def _make_options(self, options: Dict[str, Any]) -> _lib.Options:
        opts = _lib.Options()
        _lib.lib.pm_options_init(ctypes.byref(opts))
        rc = _lib.lib.pm_options_load_env(ctypes.byref(opts))
        if rc < 0:
            raise error_from_code(rc, _lib.errmsg(None))
        if options.get("cache_dir") is not None:
            cache_dir = os.fsencode(os.path.abspath(
                os.path.expanduser(os.fspath(options["cache_dir"]))))
            self._keep.append(cache_dir)
            opts.cache_dir = cache_dir
        elif opts.cache_dir:
            # Points into the environment: copy it while it is valid.
            cache_dir = bytes(opts.cache_dir)
            self._keep.append(cache_dir)
            opts.cache_dir = cache_dir
        for name in _SIZE_OPTIONS + _INT_OPTIONS:
            if options.get(name) is not None:
                value = parse_size(options[name])
                # (ctypes would wrap it: 2**32 + 65536 was a 64 KiB page)
                if value >= 1 << (32 if name in _U32_OPTIONS else 64):
                    raise ValueError("%s: %r is too large" % (
                        name, options[name]))
                setattr(opts, name, value)
        for name in _STRING_OPTIONS:
            value = options.get(name)
            if isinstance(value, (list, tuple)):  # seeds
                value = ",".join(str(v) for v in value)
            if value is not None:
                encoded = os.fsencode(str(value))
                self._keep.append(encoded)
                setattr(opts, name, encoded)
        if options.get("eviction") is not None:
            if options["eviction"] not in _lib.EVICTION:
                raise ValueError("eviction must be one of %s" % ", ".join(
                    _lib.EVICTION))
            opts.eviction = _lib.EVICTION[options["eviction"]]
        for name, flag in _FLAG_OPTIONS.items():
            if options.get(name) is not None and parse_bool(name,
                                                            options[name]):
                opts.flags |= flag
        return opts

    # ---- life -----------------------------------------------------------

    def _enter(self) -> int:
        if os.getpid() != self.pid:
            # Its threads are the parent's: a read needing them would
            # wait for ever.
            raise RuntimeError(
                "this pagemesh Peer was opened by process %d, before a "
                "fork: open one in this process (pagemesh.shared_peer() "
                "does)" % self.pid)
        with self._cond:
            if self._closed or self._handle is None:
                raise ValueError("the pagemesh peer is closed")
            self._active += 1
            return self._handle

    def _leave(self) -> None:
        with self._cond:
            self._active -= 1
            if self._active == 0:
                self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self, timeout: Optional[float] = None) -> bool:
        """Refuse new calls, wait (up to `timeout` seconds) for calls in
        flight, and close the peer (a node peer hands the cache directory
        over to an attached process). Mappings whose views are still alive
        keep the peer open until they are released. Returns False if calls
        were still running at the timeout (the peer is then left open).
        Idempotent."""
        with self._cond:
            self._closed = True
            if not self._cond.wait_for(lambda: self._active == 0, timeout):
                return False
        self._reap()
        self._close_if_unused()
        return True

    def _close_if_unused(self) -> None:
        with self._cond:
            if not self._closed or self._mapped or self._handle is None:
                return
            handle, self._handle = self._handle, None
        if os.getpid() == self.pid:
            _lib.lib.pm_peer_close(handle)

    def __enter__(self) -> "Peer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return "<pagemesh.Peer %s %r>" % (state, self.options)

    # ---- reading --------------------------------------------------------

    def read(self, uri: str, offset: int = 0,
             length: Optional[int] = None,
             version: Optional[str] = None) -> bytes:
        """Up to `length` bytes of `uri` from `offset` (to the end if
        length is None); fewer only at the end of the object. All bytes
        come from one version: `version` (else FileExpired if the object
        is now another), or whichever the read meets."""
        _check_range(offset, length)
        if length is None:
            return self._read_to_end(uri, offset, version)
        data, address = _lib.new_bytes(length)
        if length == 0:
            return data
        n = self._read_into(uri, offset, address, length, version)
        return data if n == length else data[:n]

    def _read_into(self, uri: str, offset: int, address: int, length: int,
                   version: Optional[str]) -> int:
        handle = self._enter()
        try:
            if version is None:
                n = _lib.lib.pm_read(handle, _encode(uri), offset, address,
                                     length)
            else:
                n = _lib.lib.pm_read_version(handle, _encode(uri),
                                             _encode(version), offset,
                                             address, length)
            raise_for(n, uri, pinned=version is not None)
        finally:
            self._leave()
        return n

    def _read_to_end(self, uri: str, offset: int,
                     version: Optional[str]) -> bytes:
        """The rest of the object, from one version: the one whose size is
        used (its stat), read pinned to it, so that a change meanwhile is
        read again rather than cut at the old size."""
        for attempt in range(_CHANGED_RETRIES):
            st = self.stat(uri)
            if version is not None and st.version != version:
                raise FileExpired(errno.EBUSY, "%s: changed since version "
                                  "%s (now %s)" % (uri, version, st.version),
                                  uri)
            try:
                return self.read(uri, offset, max(0, st.size - offset),
                                 version=st.version)
            except FileExpired:
                if version is not None or attempt + 1 == _CHANGED_RETRIES:
                    raise
                self.invalidate(uri)
        raise AssertionError("unreachable")

    def readinto(self, uri: str, offset: int, buffer: Any,
                 version: Optional[str] = None) -> int:
        """Read into a writable buffer (bytearray, numpy array, mmap...);
        returns the number of bytes read (of `version` only, if given)."""
        _check_range(offset, 0)
        view = memoryview(buffer).cast("B")
        if view.readonly:
            raise TypeError("readinto needs a writable buffer")
        if len(view) == 0:
            return 0
        holder = (ctypes.c_char * len(view)).from_buffer(view)
        try:
            n = self._read_into(uri, offset, ctypes.addressof(holder),
                                len(view), version)
        finally:
            del holder
            view.release()
        return n

    def read_batch(self, ranges: Sequence[Tuple[str, int, int]],
                   return_exceptions: bool = False
                   ) -> "List[Union[bytes, BaseException]]":
        """Read many ``(uri, offset, length)`` ranges in one pm_read_batch
        (in parallel on the peer's I/O threads). Returns the bytes of each
        range; a failed range raises, or with `return_exceptions` gives its
        exception in place."""
        count = len(ranges)
        if count == 0:
            return []
        array = (_lib.Range * count)()
        keep: List[Any] = []
        outputs = []
        for i, (uri, offset, length) in enumerate(ranges):
            _check_range(offset, length)
            uri_b = _encode(uri)
            data, address = _lib.new_bytes(length)
            keep.append(uri_b)
            outputs.append(data)
            array[i].uri = uri_b
            array[i].offset = offset
            array[i].length = length
            array[i].buf = address if length else None
        handle = self._enter()
        try:
            rc = _lib.lib.pm_read_batch(handle, array, count)
            detail = _lib.errmsg() if rc < 0 else ""
        finally:
            self._leave()
        if rc < 0 and all(array[i].result >= 0 for i in range(count)):
            # the batch failed as a whole (out of memory): no range says so
            raise error_from_code(rc, detail)
        results: "List[Union[bytes, BaseException]]" = []
        for i, data in enumerate(outputs):
            n = array[i].result
            if n < 0:
                exc = error_from_code(n, detail if n == rc else "",
                                      ranges[i][0])
                if not return_exceptions:
                    raise exc
                results.append(exc)
            else:
                results.append(data if n == len(data) else data[:n])
        return results

    def prefetch(self, uri: str, offset: int = 0, length: int = 0) -> None:
        """Fetch [offset, offset+length) (to the end if length is 0) into
        the cache in the background."""
        _check_range(offset, length)
        self._call(_lib.lib.pm_prefetch, uri, _encode(uri), offset, length)

    def map(self, uri: str, offset: int, length: int) -> Mapping:
        """Map a range lying within one page without copying it; see
        :class:`Mapping`."""
        _check_range(offset, length)
        self._reap()
        mapping = _lib.Mapping()
        handle = self._enter()
        try:
            rc = _lib.lib.pm_map(handle, _encode(uri), offset, length,
                                 ctypes.byref(mapping))
            raise_for(rc, uri)
            # counted before the call ends: a close() waiting for calls in
            # flight then sees it, and does not close under it
            with self._cond:
                self._mapped += 1
        finally:
            self._leave()
        return Mapping(self, uri, mapping)

    def _release_mapping(self, mapping: Mapping) -> None:
        if mapping.in_use:
            with self._cond:
                self._deferred.append(mapping)
            return
        self._unmap(mapping)

    def _reap(self) -> None:
        """Unmap closed mappings whose last view has gone."""
        with self._cond:
            free = [m for m in self._deferred if not m.in_use]
            self._deferred = [m for m in self._deferred if m.in_use]
        for mapping in free:
            self._unmap(mapping)

    def _unmap(self, mapping: Mapping) -> None:
        with self._cond:
            handle = self._handle
            self._mapped -= 1
        if handle is not None and os.getpid() == self.pid:
            _lib.lib.pm_unmap(handle, ctypes.byref(mapping._mapping))
        self._close_if_unused()

    # ---- metadata -------------------------------------------------------

    def stat(self, uri: str) -> ObjectStat:
        """Size, mtime and version of an object (from the metadata cache
        while fresh)."""
        st = _lib.ObjectStat()
        self._call(_lib.lib.pm_stat, uri, _encode(uri), ctypes.byref(st))
        return ObjectStat(st.size, st.mtime_ns,
                          st.version.decode("utf-8", "replace"))

    def ls(self, uri: str, recursive: bool = False,
           first: bool = False) -> List[ListEntry]:
        """The children of a bucket, prefix or directory (every object
        below it if `recursive`), sorted by URI; with `first`, at most one
        of them (a test that the directory exists, one origin request)."""
        entries = ctypes.POINTER(_lib.ListEntry)()
        count = ctypes.c_size_t()
        flags = _lib.PM_LIST_RECURSIVE if recursive else 0
        if first:
            flags |= _lib.PM_LIST_FIRST
        self._call(_lib.lib.pm_list, uri, _encode(uri), flags,
                   ctypes.byref(entries), ctypes.byref(count))
        try:
            return [ListEntry(
                os.fsdecode(e.uri), bool(e.is_dir), e.size, e.mtime_ns,
                e.version.decode("utf-8", "replace") if e.version else None)
                for e in entries[:count.value]]
        finally:
            _lib.lib.pm_list_free(entries, count)

    def invalidate(self, uri_prefix: str) -> None:
        """Forget cached metadata (and so old pages) under a URI prefix."""
        self._call(_lib.lib.pm_invalidate, uri_prefix, _encode(uri_prefix))

    # ---- operating the node -----------------------------------------------

    def evict(self, uri_prefix: str) -> int:
        """Drop this node's cached pages (and metadata) under a prefix;
        returns the number of pages removed."""
        return self._call(_lib.lib.pm_evict, uri_prefix,
                          _encode(uri_prefix))

    def set_capacity(self, disk_capacity: Optional[Size] = None,
                     ram_capacity: Optional[Size] = None) -> None:
        """Resize the node peer's tiers while it runs (None keeps one)."""
        self._call(_lib.lib.pm_set_capacity, None,
                   parse_size(disk_capacity or 0),
                   parse_size(ram_capacity or 0))

    def drain(self) -> int:
        """Hand this node's pages to their other owners and leave the
        mesh; returns the number of pages handed over."""
        return self._call(_lib.lib.pm_drain, None)

    @property
    def drained(self) -> bool:
        """Whether the node peer this process runs has been drained."""
        handle = self._enter()
        try:
            return bool(_lib.lib.pm_peer_drained(handle))
        finally:
            self._leave()

    # ---- what the cache did ---------------------------------------------

    def stats(self, total: bool = False) -> Dict[str, int]:
        """Counters of this peer since it opened (with `total`, plus those
        of every peer that closed on this cache directory)."""
        st = _lib.Stats()
        st.size = ctypes.sizeof(_lib.Stats)
        fn = (_lib.lib.pm_peer_stats_total if total
              else _lib.lib.pm_peer_stats)
        self._call(fn, None, ctypes.byref(st))
        return {name: getattr(st, name) for name in _lib.STATS_FIELDS}

    def status(self) -> Dict[str, Any]:
        """The node peer's status: node_pid, this process's role, cache
        dir, page size, attached pids and node-wide stats."""
        out = ctypes.c_void_p()
        self._call(_lib.lib.pm_peer_status, None, ctypes.byref(out))
        try:
            return json.loads(ctypes.string_at(out.value).decode())
        finally:
            _lib.lib.pm_free(out)

    @property
    def role(self) -> str:
        """"node", "attached" or "standalone"."""
        return self.status()["role"]

    def _call(self, fn: Any, name: Optional[str], *args: Any) -> int:
        handle = self._enter()
        try:
            rc = fn(handle, *args)
            raise_for(rc, name)
            return rc
        finally:
            self._leave()


# ---- one peer per process -------------------------------------------------

_registry_lock = threading.Lock()
_registry: Dict[Tuple[Tuple[str, Any], ...], Peer] = {}
_registry_pid = os.getpid()


def _key(options: Dict[str, Any]) -> Tuple[Tuple[str, Any], ...]:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v)
                        for k, v in options.items() if v is not None))


def _reset_registry() -> None:
    """Forget the peers of another process (we are a forked child): their
    threads do not exist here, so they are dropped, never closed."""
    global _registry_pid
    _registry.clear()
    _registry_pid = os.getpid()


def _after_fork_in_child() -> None:
    global _registry_lock
    _registry_lock = threading.Lock()
    _reset_registry()


os.register_at_fork(after_in_child=_after_fork_in_child)


def shared_peer(**options: Any) -> Peer:
    """The process-wide Peer for these options, opened on first use (and
    again in a forked child)."""
    key = _key(options)
    with _registry_lock:
        if _registry_pid != os.getpid():
            _reset_registry()
        peer = _registry.get(key)
        if peer is None or peer.closed:
            peer = Peer(**options)
            _registry[key] = peer
        return peer


def shared_peers() -> Iterable[Peer]:
    """The peers :func:`shared_peer` opened in this process."""
    return list(_registry.values())


@atexit.register
def _close_shared_peers() -> None:
    if _registry_pid != os.getpid():
        return
    for peer in list(_registry.values()):
        try:
            # A daemon thread may still be reading: do not hang the exit.
            peer.close(timeout=5.0)
        except Exception:  # noqa: BLE001 - best effort at exit
            pass
