"""ctypes declarations of libpagemesh's public API (include/pagemesh.h).

This module only loads the shared library and declares the C structs and
function signatures; :mod:`pagemesh.peer` builds the Python API on top.
Every function is called through a :class:`ctypes.CDLL`, which releases the
GIL for the duration of the call, so reads from several Python threads run
in parallel inside the (thread-safe) library.

Where the library comes from, first match wins:

1. ``$PAGEMESH_LIBRARY`` (a path to ``libpagemesh.so*``);
2. the copy bundled into the package at install time (``pagemesh/_native``);
3. the system library path (``libpagemesh.so.0`` installed by CMake).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from ctypes import (POINTER, Structure, c_char, c_char_p, c_int, c_int64,
                    c_size_t, c_ssize_t, c_uint, c_uint32, c_uint64,
                    c_void_p)
from typing import Optional

NATIVE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "_native")
SONAME = "libpagemesh.so.0"

# Error codes, as PM_ERRNO_MAP in pagemesh.h (append-only upstream).
PM_EINVAL = -1
PM_ENOMEM = -2
PM_ENOENT = -3
PM_EACCES = -4
PM_EIO = -5
PM_ETIMEDOUT = -6
PM_EUNREACHABLE = -7
PM_EBADURI = -8
PM_ECHANGED = -9
PM_ECORRUPT = -10
PM_ENOSPC = -11
PM_ENOTSUP = -12
PM_EORIGIN = -13
PM_ERANGE = -14
PM_EPROTO = -15
PM_EAUTH = -16
PM_EBUSY = -17
PM_ESHUTDOWN = -18
PM_ETOOBIG = -19
PM_ECONFIG = -20
PM_EEXIST = -21

# pm_options.flags
PM_OPEN_VERIFY_ALWAYS = 1 << 0
PM_OPEN_PASSTHROUGH = 1 << 1
PM_OPEN_STANDALONE = 1 << 2
PM_OPEN_ATTACH_ONLY = 1 << 3
PM_OPEN_NODE_ONLY = 1 << 4
PM_OPEN_INSECURE_DATA = 1 << 5

# pm_list flags
PM_LIST_RECURSIVE = 1 << 0
PM_LIST_FIRST = 1 << 1

# pm_eviction
EVICTION = {"stable": 0, "lru": 1}

PM_VERSION_MAX = 128


class Options(Structure):
    """struct pm_options."""
    _fields_ = [
        ("size", c_size_t),
        ("cache_dir", c_char_p),
        ("disk_capacity", c_uint64),
        ("ram_capacity", c_uint64),
        ("page_size", c_uint32),
        ("eviction", c_int),
        ("meta_ttl_ms", c_uint32),
        ("readahead_pages", c_uint32),
        ("io_threads", c_uint32),
        ("origin_timeout_ms", c_uint32),
        ("origin_retries", c_uint32),
        ("flags", c_uint32),
        # the mesh
        ("listen", c_char_p),
        ("seeds", c_char_p),
        ("cluster_key_file", c_char_p),
        ("cluster_id", c_char_p),
        ("transport", c_char_p),
        ("transport_listen", c_char_p),
        ("zone", c_char_p),
        ("replicas", c_uint32),
        ("request_timeout_ms", c_uint32),
        ("node_group", c_char_p),
    ]


class Range(Structure):
    """struct pm_range (one range of pm_read_batch)."""
    _fields_ = [
        ("uri", c_char_p),
        ("offset", c_uint64),
        ("length", c_size_t),
        ("buf", c_void_p),
        ("result", c_ssize_t),
    ]


class Mapping(Structure):
    """struct pm_mapping."""
    _fields_ = [
        ("data", c_void_p),
        ("length", c_size_t),
        ("priv_", c_void_p),
    ]


class ObjectStat(Structure):
    """struct pm_object_stat."""
    _fields_ = [
        ("size", c_uint64),
        ("mtime_ns", c_int64),
        ("version", c_char * PM_VERSION_MAX),
    ]


class ListEntry(Structure):
    """struct pm_list_entry."""
    _fields_ = [
        ("uri", c_char_p),
        ("is_dir", c_int),
        ("size", c_uint64),
        ("mtime_ns", c_int64),
        ("version", c_char_p),
    ]


STATS_FIELDS = (
    "reads", "bytes_served", "hits_ram", "hits_disk", "misses",
    "origin_requests", "origin_bytes", "evictions", "corrupt_pages",
    "declined", "store_errors", "disk_used", "disk_capacity", "ram_used",
    "ram_capacity", "pages_disk", "pages_ram",
)


class Stats(Structure):
    """struct pm_stats."""
    _fields_ = [("size", c_size_t)] + [(name, c_uint64)
                                       for name in STATS_FIELDS]


LOG_FN = ctypes.CFUNCTYPE(None, c_void_p, c_int, c_char_p, c_char_p)

_PEER = c_void_p

# name: (restype, argtypes)
_SIGNATURES = {
    "pm_strerror": (c_char_p, [c_int]),
    "pm_err_name": (c_char_p, [c_int]),
    "pm_version": (c_char_p, []),
    "pm_options_init": (None, [POINTER(Options)]),
    "pm_options_load_env": (c_int, [POINTER(Options)]),
    "pm_peer_open": (c_int, [POINTER(Options), POINTER(_PEER)]),
    "pm_peer_close": (None, [_PEER]),
    "pm_peer_errmsg": (c_char_p, [_PEER]),
    "pm_read": (c_ssize_t, [_PEER, c_char_p, c_uint64, c_void_p, c_size_t]),
    "pm_read_version": (c_ssize_t, [_PEER, c_char_p, c_char_p, c_uint64,
                                    c_void_p, c_size_t]),
    "pm_read_batch": (c_int, [_PEER, POINTER(Range), c_size_t]),
    "pm_prefetch": (c_int, [_PEER, c_char_p, c_uint64, c_uint64]),
    "pm_map": (c_int, [_PEER, c_char_p, c_uint64, c_size_t,
                       POINTER(Mapping)]),
    "pm_unmap": (None, [_PEER, POINTER(Mapping)]),
    "pm_stat": (c_int, [_PEER, c_char_p, POINTER(ObjectStat)]),
    "pm_invalidate": (c_int, [_PEER, c_char_p]),
    "pm_evict": (c_ssize_t, [_PEER, c_char_p]),
    "pm_set_capacity": (c_int, [_PEER, c_uint64, c_uint64]),
    "pm_drain": (c_ssize_t, [_PEER]),
    "pm_peer_drained": (c_int, [_PEER]),
    "pm_list": (c_int, [_PEER, c_char_p, c_uint, POINTER(POINTER(ListEntry)),
                        POINTER(c_size_t)]),
    "pm_list_free": (None, [POINTER(ListEntry), c_size_t]),
    "pm_peer_stats": (c_int, [_PEER, POINTER(Stats)]),
    "pm_peer_stats_total": (c_int, [_PEER, POINTER(Stats)]),
    "pm_peer_status": (c_int, [_PEER, POINTER(c_void_p)]),
    "pm_free": (None, [c_void_p]),
    "pm_log_set": (None, [c_int, LOG_FN, c_void_p]),
}


def _bundled() -> Optional[str]:
    path = os.path.join(NATIVE_DIR, SONAME)
    return path if os.path.exists(path) else None


def library_path() -> str:
    """The path (or soname) of the libpagemesh that will be loaded."""
    explicit = os.environ.get("PAGEMESH_LIBRARY")
    if explicit:
        return explicit
    return _bundled() or ctypes.util.find_library("pagemesh") or SONAME


def _load() -> ctypes.CDLL:
    path = library_path()
    try:
        lib = ctypes.CDLL(path)
    except OSError as e:
        raise ImportError(
            "pagemesh: cannot load the C library (%s): %s. Set "
            "PAGEMESH_LIBRARY to build/libpagemesh.so.0, or reinstall the "
            "package after building the C project." % (path, e)) from e
    for name, (restype, argtypes) in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


lib = _load()

# Fresh `bytes` objects that the library fills in place (one copy less than
# reading into a bytearray and converting): allocate with a NULL source,
# fill before anyone else can see the object. These run with the GIL held.
_bytes_new = ctypes.pythonapi.PyBytes_FromStringAndSize
_bytes_new.restype = ctypes.py_object
_bytes_new.argtypes = [c_void_p, c_ssize_t]
_bytes_ptr = ctypes.pythonapi.PyBytes_AsString
_bytes_ptr.restype = c_void_p
_bytes_ptr.argtypes = [ctypes.py_object]


def new_bytes(length: int) -> "tuple[bytes, int]":
    """A new, unshared bytes object of `length` bytes and the address of
    its data, for the library to write into before it is handed out."""
    obj = _bytes_new(None, length)
    return obj, _bytes_ptr(obj)


def version() -> str:
    """The C library's version, "MAJOR.MINOR.PATCH"."""
    return lib.pm_version().decode()


def err_name(code: int) -> str:
    return lib.pm_err_name(code).decode()


def strerror(code: int) -> str:
    return lib.pm_strerror(code).decode()


def errmsg(peer: Optional[int] = None) -> str:
    """The detail of the last failure on the calling thread."""
    return (lib.pm_peer_errmsg(peer) or b"").decode("utf-8", "replace")
