"""Image files of a case: checked arrays, atomic PNG writes, checked reads, text masking.

A file is written to a temporary name in the same folder, flushed and ``fsync``-ed, then
renamed over the final name (``os.replace``) and the folder ``fsync``-ed, so after a crash
or power loss a name holds either a complete image or nothing. Files are created with
mode ``0o600`` (readable by the user only).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import cv2
import numpy as np

from or_assist.core.outputs import atomic_write
from or_assist.errors import InputError

__all__ = ["FILE_MODE", "check_image", "check_mask", "encode_png", "write_file_atomic", "fsync_dir",
           "read_png", "apply_text_mask"]

#: Mode of every file of a case.
FILE_MODE = 0o600


def check_image(image, name: str) -> np.ndarray:
    """An image the log can store: ``(H, W)`` grey or ``(H, W, 3)`` BGR, ``uint8`` or ``uint16``.

    Raises
    ------
    InputError
        Naming ``name`` and what was expected.
    """
    if not isinstance(image, np.ndarray):
        raise InputError(f"expected a numpy image array, got {type(image).__name__}", name)
    if image.dtype not in (np.uint8, np.uint16):
        raise InputError(f"expected dtype uint8 or uint16, got {image.dtype}", name)
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3))):
        raise InputError(f"expected shape (H, W) or (H, W, 3), got {image.shape}", name)
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise InputError(f"empty image of shape {image.shape}", name)
    return np.ascontiguousarray(image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image)


def check_mask(mask, shape: tuple[int, ...], name: str) -> np.ndarray:
    """A ``(H, W)`` boolean mask of the image's height and width, as ``uint8`` 0/255."""
    if not isinstance(mask, np.ndarray):
        raise InputError(f"expected a numpy bool array, got {type(mask).__name__}", name)
    if mask.shape != tuple(shape[:2]):
        raise InputError(f"expected shape {tuple(shape[:2])} (the image's height and width), got {mask.shape}", name)
    if mask.dtype != bool and not (np.issubdtype(mask.dtype, np.integer) and np.isin(mask, (0, 1)).all()):
        raise InputError(f"expected a bool (or 0/1) mask, got dtype {mask.dtype}", name)
    return np.where(mask.astype(bool), np.uint8(255), np.uint8(0))


def encode_png(image: np.ndarray, name: str = "image") -> bytes:
    """PNG bytes of a checked image (OpenCV, compression level 3)."""
    ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise InputError("OpenCV could not encode it as PNG", name)
    return buf.tobytes()


def fsync_dir(folder: Path) -> None:
    """``fsync`` a folder so renames in it are durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file_atomic(path: Path, data: bytes, *, sync_dir: bool = True) -> str:
    """Write ``data`` to ``path`` atomically and durably; returns its SHA-256 (hex).

    Raises
    ------
    OSError
        Naming ``path`` (disk full, read-only, folder gone); no temporary file is left.
    """
    path = atomic_write(path, data, mode=FILE_MODE, fsync=True)
    if sync_dir:
        fsync_dir(path.parent)
    return hashlib.sha256(data).hexdigest()


def read_png(path: Path, sha256: str | None = None) -> np.ndarray:
    """Read an image file of a case, checking its checksum when one is recorded.

    Returns
    -------
    (H, W) or (H, W, 3) ndarray, uint8 or uint16
        As written (BGR for colour).

    Raises
    ------
    InputError
        The file is missing, is not a decodable image, or its SHA-256 differs from the
        recorded one (the message names the file).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError("image file missing", str(path)) from None
    except OSError as exc:
        raise InputError(f"image file unreadable ({exc.strerror})", str(path)) from None
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise InputError("image file damaged: its SHA-256 differs from the one recorded in the case", str(path))
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    if image is None:
        raise InputError("not a decodable image (truncated or corrupted PNG)", str(path))
    return image


def apply_text_mask(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A copy of ``image`` with the text of the ``(H, W)`` mask covered by black boxes.

    Blacking out only the glyph pixels would leave the text readable as black letters,
    so the mask is dilated (by 1/100 of the image height, at least 3 px) to join the
    letters of a word and each joined region's bounding box is filled black.
    """
    out = image.copy()
    m = mask.astype(np.uint8)
    if not m.any():
        return out
    k = max(3, int(round(image.shape[0] / 100)))
    m = cv2.dilate(m, np.ones((k, 2 * k + 1), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    for x, y, w, h, _area in stats[1:n]:
        out[y:y + h, x:x + w] = 0
    return out
