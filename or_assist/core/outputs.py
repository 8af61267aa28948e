"""Checking output paths before the work, and turning write failures into one line.

Every command that writes checks its output first (:func:`check_output_file`,
:func:`check_output_dir`), so that a read-only file system, an output under a regular
file or a file path that is a folder is reported before seconds or minutes of work are
lost. The check really creates (and removes) a small file in the target folder:
permission bits do not tell the truth for root or on read-only mounts.

Writing itself goes through :func:`write_bytes_atomic` (temporary file, then rename;
the temporary file is removed on any failure) or is wrapped in :func:`write_errors`,
which turns ``OSError`` (read-only, disk full, folder vanished) into one
:class:`~or_assist.errors.InputError` naming the path.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import tempfile
from pathlib import Path

from or_assist.errors import InputError

__all__ = ["check_output_file", "check_output_dir", "write_error", "write_errors", "write_reason", "atomic_write",
           "write_bytes_atomic", "write_image", "remove_quietly", "quiet_stderr"]

_REASONS = {errno.ENOSPC: "the disk is full", errno.EFBIG: "the file is too large for this file system (or the "
            "disk is full)", errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
            errno.EPERM: "permission denied", errno.ENOENT: "the folder does not exist (any more)",
            errno.ENOTDIR: "a part of the path is a file, not a folder", errno.EISDIR: "it is a folder",
            errno.EDQUOT: "the disk quota is exceeded"}


def _reason(exc: OSError) -> str:
    return _REASONS.get(exc.errno, exc.strerror or str(exc))


def write_reason(exc: OSError) -> str:
    """Why a write failed, in plain words ("the disk is full", "the file system is read-only", ...)."""
    return _reason(exc)


def write_error(path, exc: OSError, what: str = "the output") -> InputError:
    """The one-line error for a failed write of ``what`` at ``path``."""
    return InputError(f"could not write {what}: {_reason(exc)}", str(path))


@contextlib.contextmanager
def write_errors(path, what: str = "the output"):
    """Context manager: an ``OSError`` inside becomes :func:`write_error` for ``path``."""
    try:
        yield
    except OSError as exc:
        raise write_error(getattr(exc, "filename", None) or path, exc, what) from None


def remove_quietly(path) -> None:
    """Remove a file if it is there; never raises (used to clean up after a failure)."""
    try:
        os.unlink(path)
    except OSError:
        pass


def _existing_ancestor(path: Path) -> Path:
    p = path
    while not p.exists() and not p.is_symlink():
        if p.parent == p:
            break
        p = p.parent
    return p


def _probe(folder: Path, target: Path, name: str, what: str) -> None:
    try:
        fd, probe = tempfile.mkstemp(prefix=".or_assist_write_check_", dir=folder)
    except OSError as exc:
        raise InputError(f"{name}: cannot write {what} here: {_reason(exc)} in {folder}", str(target)) from None
    os.close(fd)
    remove_quietly(probe)


def _check_parent(path: Path, name: str, what: str) -> None:
    parent = path.parent
    ancestor = _existing_ancestor(parent)
    if not ancestor.is_dir():
        raise InputError(f"{name}: cannot write {what} here: {ancestor} is a file, not a folder", str(path))
    _probe(ancestor, path, name, what)


def check_output_file(path, name: str = "--out", what: str = "the output file") -> Path:
    """Check, before any long work, that a file can be written at ``path``.

    Parameters
    ----------
    path : path-like
        The file to be written (it may exist; it is not changed).
    name : str
        The argument it came from, for the message.
    what : str
        What will be written, for the message.

    Returns
    -------
    Path

    Raises
    ------
    InputError
        ``path`` is a folder; a part of its folder path is a file; the folder (or the
        nearest existing folder above it) cannot be written in (read-only file system,
        permissions, full disk); an existing file cannot be opened for writing.
    """
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{name}: is a folder; expected the path of {what}", str(p))
    _check_parent(p, name, what)
    if p.exists():
        try:
            os.close(os.open(p, os.O_WRONLY | os.O_APPEND))   # opens without changing it
        except OSError as exc:
            raise InputError(f"{name}: cannot overwrite {what}: {_reason(exc)}", str(p)) from None
    return p


def check_output_dir(path, name: str = "--out", what: str = "the output folder") -> Path:
    """Check, before any long work, that ``path`` is or can be made a writable folder.

    Raises
    ------
    InputError
        ``path`` is a file; a part of it is a file; it cannot be created or written in.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise InputError(f"{name}: is a file; expected {what}", str(p))
    if p.is_dir():
        _probe(p, p, name, what)
    else:
        _check_parent(p, name, what)
    return p


def atomic_write(path, data: bytes, *, mode: int = 0o644, fsync: bool = False) -> Path:
    """Write ``data`` through a temporary file in the same folder, then rename it over ``path``.

    The lower layer of :func:`write_bytes_atomic` for callers that handle ``OSError``
    themselves (the case log). On any failure the temporary file is removed, ``path``
    keeps its old content, and an ``OSError`` naming ``path`` is raised.

    Parameters
    ----------
    path : path-like
    data : bytes
    mode : int
        File mode of a new file.
    fsync : bool
        Flush the data to the disk before the rename (durable after a power loss).
    """
    p = Path(path)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, p)
    except OSError as exc:
        remove_quietly(tmp)
        raise OSError(exc.errno, exc.strerror, str(p)) from None
    except BaseException:
        remove_quietly(tmp)
        raise
    return p


def write_bytes_atomic(path, data: bytes, *, what: str = "the output", mode: int = 0o644) -> Path:
    """Write ``data`` to ``path`` atomically (:func:`atomic_write`), creating its folder.

    On any failure the temporary file is removed and the old ``path`` (if any) is left
    as it was; the error is one :class:`~or_assist.errors.InputError` naming ``path``.
    """
    p = Path(path)
    with write_errors(p, what):
        p.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write(p, data, mode=mode)


def write_image(path, image, *, what: str = "the image") -> Path:
    """Encode ``image`` by the file's extension (PNG, JPEG, TIFF) and write it atomically.

    Unlike ``cv2.imwrite``, a failure (disk full, read-only, folder vanished) leaves
    neither a partial image nor a temporary file, and is one
    :class:`~or_assist.errors.InputError` naming the path.
    """
    import cv2

    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"):
        raise InputError(f"cannot write {what}: unknown image type {suffix!r} (use .png)", str(p))
    ok, buf = cv2.imencode(suffix, image)
    if not ok:
        raise InputError(f"OpenCV could not encode {what} as {suffix}", str(p))
    return write_bytes_atomic(p, buf.tobytes(), what=what)


class CapturedStderr:
    """What a C library printed on the standard error while :func:`quiet_stderr` was active."""

    def __init__(self) -> None:
        self.text = b""

    def replay(self) -> None:
        """Print the captured messages after all (the work succeeded, so they are not noise)."""
        if self.text:
            try:
                sys.stderr.flush()
                os.write(2, self.text)
            except (OSError, ValueError):
                pass


@contextlib.contextmanager
def quiet_stderr():
    """Hold back what C libraries (ITK, OpenCV) print on file descriptor 2 during a write.

    A failed write is then reported as one line by the caller instead of the library's
    own messages before it; after a write that succeeded call ``replay()`` on the
    yielded :class:`CapturedStderr` to print them after all. At most 64 KiB are kept.
    """
    captured = CapturedStderr()
    try:
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass
    try:
        saved = os.dup(2)
    except OSError:
        saved = None
    sink = None
    if saved is not None:
        try:
            sink = tempfile.TemporaryFile()
        except OSError:
            sink = open(os.devnull, "w+b")
        os.dup2(sink.fileno(), 2)
    try:
        yield captured
    finally:
        if saved is not None:
            os.dup2(saved, 2)
            os.close(saved)
            try:
                sink.seek(0)
                captured.text = sink.read(64 * 1024)
            except OSError:
                pass
            sink.close()
