"""Mapping libpagemesh error codes to the Python exceptions that fsspec,
PyArrow and training code expect.

``PM_ENOENT`` becomes :class:`FileNotFoundError`, ``PM_EACCES`` and
``PM_EAUTH`` :class:`PermissionError`, ``PM_ETIMEDOUT``
:class:`TimeoutError`, ``PM_ECHANGED`` on a read of one version
:class:`FileExpired`; everything else a :class:`PagemeshError` (an
:class:`OSError`). Each carries the library's detail message, which names
the object and the cause ("s3://b/k: HTTP 403 AccessDenied").
"""

from __future__ import annotations

import errno
from typing import Optional

from . import _lib

_ERRNO = {
    _lib.PM_EINVAL: errno.EINVAL,
    _lib.PM_ENOMEM: errno.ENOMEM,
    _lib.PM_ENOENT: errno.ENOENT,
    _lib.PM_EACCES: errno.EACCES,
    _lib.PM_EIO: errno.EIO,
    _lib.PM_ETIMEDOUT: errno.ETIMEDOUT,
    _lib.PM_EUNREACHABLE: errno.EHOSTUNREACH,
    _lib.PM_EBADURI: errno.EINVAL,
    _lib.PM_ECHANGED: errno.EAGAIN,
    _lib.PM_ECORRUPT: errno.EIO,
    _lib.PM_ENOSPC: errno.ENOSPC,
    _lib.PM_ENOTSUP: errno.ENOTSUP,
    _lib.PM_EORIGIN: errno.EIO,
    _lib.PM_ERANGE: errno.ERANGE,
    _lib.PM_EPROTO: errno.EPROTO,
    _lib.PM_EAUTH: errno.EACCES,
    _lib.PM_EBUSY: errno.EBUSY,
    _lib.PM_ESHUTDOWN: errno.ESHUTDOWN,
    _lib.PM_ETOOBIG: errno.EFBIG,
    _lib.PM_ECONFIG: errno.EINVAL,
    _lib.PM_EEXIST: errno.EEXIST,
}


class FileExpired(OSError):
    """The object changed since the file was opened (``PM_ECHANGED`` on a
    read pinned to the version it was opened at): reading on would mix two
    versions. Open it again (after ``invalidate_cache``) to read the new
    one. As s3fs's ``FileExpired``, errno is EBUSY."""


class PagemeshError(OSError):
    """A libpagemesh failure that has no more specific Python exception.

    ``code`` is the (negative) pm_err code and ``name`` its symbol
    ("PM_EORIGIN"); ``errno`` the closest POSIX errno; ``strerror`` the
    detail message.
    """

    code: int = 0
    name: str = ""


def error_from_code(code: int, detail: str = "",
                    filename: Optional[str] = None) -> OSError:
    """The exception for pm_err `code` (with the detail message of the
    failed call, and the object's name where there is one)."""
    message = detail or _lib.strerror(code)
    eno = _ERRNO.get(code, errno.EIO)
    if code == _lib.PM_ENOENT:
        exc: OSError = FileNotFoundError(eno, message, filename)
    elif code in (_lib.PM_EACCES, _lib.PM_EAUTH):
        exc = PermissionError(eno, message, filename)
    elif code == _lib.PM_ETIMEDOUT:
        exc = TimeoutError(eno, message, filename)
    else:
        exc = PagemeshError(eno, "%s (%s)" % (message, _lib.err_name(code)),
                            filename)
        exc.code = code
        exc.name = _lib.err_name(code)
    return exc


def raise_for(code: int, filename: Optional[str] = None,
              pinned: bool = False) -> None:
    """Raise the exception for a negative result of the last call on this
    thread; return if `code` is not negative. `pinned`: the call read one
    version, so PM_ECHANGED is FileExpired."""
    if code < 0:
        if pinned and code == _lib.PM_ECHANGED:
            raise FileExpired(errno.EBUSY, _lib.errmsg(), filename)
        raise error_from_code(code, _lib.errmsg(), filename)
