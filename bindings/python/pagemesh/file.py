"""Files opened through :class:`pagemesh.PagemeshFileSystem`.

:class:`PagemeshFile` is a seekable, random-access read-only file whose
reads are served by ``pm_read_version`` (cached pages, origin only on a
miss), all from the version the file was opened at: if the object changes
under it, a read raises :class:`pagemesh.FileExpired` (as s3fs's does)
rather than mix two versions. Its
buffering suits Parquet: a small read-ahead block (64 KiB by default) turns
the many small reads of a footer or a page header into one call, while a
column chunk is read in one call of its own size, so no more of the object
than PyArrow asks for is fetched.

:class:`InvalidatingWriter` wraps a file that the target filesystem opened
for writing, and drops the object's cached metadata when it is closed, so
that the next read sees the new bytes.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any, Callable, Optional

from fsspec.spec import AbstractBufferedFile

if TYPE_CHECKING:  # pragma: no cover
    from .fs import PagemeshFileSystem

DEFAULT_BLOCK_SIZE = 64 * 1024


class PagemeshFile(AbstractBufferedFile):
    """A read-only file of one object, read through the node peer."""

    def __init__(self, fs: "PagemeshFileSystem", path: str, mode: str = "rb",
                 block_size: Optional[int] = None,
                 cache_type: str = "readahead",
                 cache_options: Optional[dict] = None,
                 size: Optional[int] = None, version: Optional[str] = None,
                 **kwargs: Any):
        if mode != "rb":
            raise ValueError("PagemeshFile is read-only (mode 'rb')")
        self.uri = fs._uri(path)
        # The version every read is pinned to, and its size, from the
        # peer's metadata (not a listing cached by the filesystem); given
        # when a pickled file is opened again elsewhere.
        if version is None or size is None:
            try:
                st = fs.peer.stat(self.uri)
            except FileNotFoundError as e:
                raise fs._not_found(path, e) from None
            version, size = st.version, st.size if size is None else size
        self.version = version
        super().__init__(fs, path, mode=mode,
                         block_size=block_size or DEFAULT_BLOCK_SIZE,
                         cache_type=cache_type, cache_options=cache_options,
                         size=size, **kwargs)
        self.details = {"name": path, "size": size, "type": "file",
                        "version": version, "ETag": version}

    def __reduce__(self) -> Any:
        """Unpickled (in a Ray worker, a DataLoader worker), the file
        reads the same version at the same position: an object that
        changed since raises FileExpired, as here."""
        return _reopen, (self.fs, self.path, self.version, self.size,
                         self.blocksize, self.loc,
                         self.cache.name if self.cache else "none")

    def _fetch_range(self, start: int, end: int) -> bytes:
        end = min(end, self.size)
        if end <= start:
            return b""
        return self.fs.peer.read(self.uri, start, end - start,
                                 version=self.version)

    def read(self, length: int = -1) -> bytes:
        """Read up to `length` bytes (to the end if negative). Reads of a
        block or more go straight to pm_read, without read-ahead: a column
        chunk costs exactly its own pages."""
        if length is None or length < 0:
            length = self.size - self.loc
        if length < self.blocksize or self.closed or self.mode != "rb":
            return super().read(length)
        data = self._fetch_range(self.loc, self.loc + length)
        self.loc += len(data)
        return data

    def readinto(self, b: Any) -> int:
        """Read straight into a writable buffer when no buffered bytes are
        involved (large reads of numpy arrays, torch tensors...)."""
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        view = memoryview(b).cast("B")
        if self.cache.name == "none" or len(view) >= self.blocksize:
            n = self.fs.peer.readinto(self.uri, self.loc,
                                      view[:max(0, self.size - self.loc)],
                                      version=self.version)
            self.loc += n
            return n
        data = self.read(len(view))
        view[:len(data)] = data
        return len(data)


def _reopen(fs: "PagemeshFileSystem", path: str, version: str, size: int,
            block_size: int, loc: int, cache_type: str) -> PagemeshFile:
    file = PagemeshFile(fs, path, block_size=block_size,
                        cache_type=cache_type, size=size, version=version)
    if loc:
        file.seek(loc)
    return file


class InvalidatingWriter:
    """A writable file of the target filesystem that calls `on_close` once
    its bytes may be at the origin: when it is closed (committed, outside
    a transaction), committed or discarded (in one), or, if it was never
    closed, when the wrapped file is collected (after its own __del__,
    which commits, as s3fs's does). The filesystem then invalidates the
    object's cached metadata. Every other attribute is the wrapped
    file's."""

    def __init__(self, file: Any, on_close: Callable[[], None]):
        self._file = file
        self._on_close = on_close
        # Not a __del__ of this wrapper: a bound method of the wrapped file
        # (fs.open(p, "wb").write) outlives it.
        self._collected = weakref.finalize(file, on_close)

    def _then_invalidate(self, method: str, done: bool) -> None:
        try:
            getattr(self._file, method)()
        finally:
            if done:
                self._collected.detach()
            self._on_close()

    def close(self) -> None:
        self._then_invalidate("close",
                              getattr(self._file, "autocommit", True))

    def commit(self) -> None:
        self._then_invalidate("commit", True)

    def discard(self) -> None:
        self._then_invalidate("discard", True)

    def __enter__(self) -> "InvalidatingWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)

    def __iter__(self) -> Any:
        return iter(self._file)
