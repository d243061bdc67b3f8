"""pagemesh: a peer-to-peer page cache for ML training data, from Python.

- :class:`Peer`: one handle of libpagemesh (read, read_batch, map, stat,
  ls, invalidate, prefetch, stats, status).
- :class:`PagemeshFileSystem`: the fsspec filesystem "pagemesh" that
  PyArrow, Ray Data and PyTorch read through
  (``fsspec.filesystem("pagemesh", target_protocol="s3", ...)`` or
  ``pagemesh::s3://bucket/key``).
- :mod:`pagemesh.ray`: the Ray runtime_env plugin that starts or reuses a
  node peer (``pagemeshd``) on every node running a job's workers.
- :mod:`pagemesh.daemon`: finding, checking and starting ``pagemeshd``.
"""

from ._lib import library_path
from ._lib import version as library_version
from .errors import FileExpired, PagemeshError
from .fs import PagemeshFileSystem
from .peer import ListEntry, Mapping, ObjectStat, Peer, parse_size, shared_peer

__version__ = "0.1.0"

__all__ = [
    "FileExpired", "ListEntry", "Mapping", "ObjectStat", "PagemeshError",
    "PagemeshFileSystem", "Peer", "library_path", "library_version",
    "parse_size", "shared_peer",
]
