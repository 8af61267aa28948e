"""Frame input and orientation for shot preprocessing.

* :func:`as_gray_uint8` validates a frame as a grabber delivers it (uint8, uint16 or
  float; grey, BGR or BGRA) and returns the grey ``uint8`` image every detector in
  :mod:`or_assist.video.preprocess.shot` works on.
* :class:`Orientation` is the flip/rotation that brings a frame as the monitor shows it
  back into the *physical* image orientation, the one whose pixels follow
  ``CONVENTIONS.md`` (+u along the source frame's +x, +v along +y). A flip or a
  quarter turn of a video image is a signed permutation of the pixel axes: it is
  applied to the pixels (:meth:`Orientation.apply_image`) **and** to the geometry
  (:meth:`Orientation.apply_geometry`: size, principal point, pixel spacing and the
  tangential distortion terms), so that :func:`or_assist.core.geometry.project` with
  the returned geometry lands on the same anatomy in the returned pixels. A pose never
  holds a reflection; a mirrored monitor is undone here, before registration.

Examples
--------
>>> o = Orientation((4, 3), flip_horizontal=True)
>>> o.apply_points([[0.0, 0.0], [3.0, 2.0]]).tolist()
[[3.0, 0.0], [0.0, 2.0]]
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from or_assist.core.geometry import CArmGeometry
from or_assist.errors import InputError

__all__ = ["ROTATIONS_DEG", "as_gray_uint8", "colourfulness", "Orientation"]

ROTATIONS_DEG = (0, 90, 180, 270)
_MIN_SIDE_PX = 16


def as_gray_uint8(frame, name: str = "frame") -> np.ndarray:
    """Validate a video frame and return it as a grey ``uint8`` image.

    Parameters
    ----------
    frame : (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) ndarray
        ``uint8`` (0-255), ``uint16`` (0-65535) or float (0-1, or 0-255 when the
        maximum exceeds 1). Three channels are BGR (OpenCV's order), four BGRA.
    name : str
        The argument name used in error messages.

    Returns
    -------
    (H, W) uint8 ndarray, C-contiguous
        A view of ``frame`` when it already is contiguous grey ``uint8``.

    Raises
    ------
    InputError
        Not an array, wrong dimensions or channels, too small, an unsupported dtype,
        NaN/inf, or floats outside 0-255.
    """
    if not isinstance(frame, np.ndarray):
        raise InputError(f"must be a numpy array (H, W) or (H, W, 3), got {type(frame).__name__}", name)
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] not in (3, 4)):
        raise InputError(f"must have shape (H, W), (H, W, 3) or (H, W, 4), got {frame.shape}", name)
    if min(frame.shape[:2]) < _MIN_SIDE_PX:
        raise InputError(f"must be at least {_MIN_SIDE_PX} x {_MIN_SIDE_PX} pixels, got {frame.shape[:2]}", name)
    dt = frame.dtype
    if dt == np.uint8:
        img = frame
    elif dt == np.uint16:
        img = cv2.convertScaleAbs(frame, alpha=255.0 / 65535.0) if frame.ndim == 2 else \
            (frame.astype(np.float32) * np.float32(255.0 / 65535.0) + 0.5).astype(np.uint8)
    elif dt in (np.float32, np.float64):
        f = np.asarray(frame, dtype=np.float32)
        lo, hi = float(f.min()), float(f.max())
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise InputError("contains NaN or inf", name)
        if lo < 0 or hi > 255.0:
            raise InputError(f"float values must lie in 0-1 or 0-255, got {lo:g}..{hi:g}", name)
        scale = 255.0 if hi <= 1.0 else 1.0
        img = cv2.convertScaleAbs(f, alpha=scale) if f.ndim == 2 else \
            np.clip(f * np.float32(scale) + 0.5, 0, 255).astype(np.uint8)
    else:
        raise InputError(f"must be uint8, uint16, float32 or float64, got dtype {dt}", name)
    if img.ndim == 3:
        code = cv2.COLOR_BGR2GRAY if img.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
        img = cv2.cvtColor(np.ascontiguousarray(img), code)
    return np.ascontiguousarray(img)


def colourfulness(frame: np.ndarray) -> float:
    """Median chroma (max - min over the channels, 0-255) of a colour frame; 0 for grey.

    Fluoroscopy is grey; a frame whose typical pixel is strongly coloured is not one.
    """
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] < 3:
        return 0.0
    step = max(1, int(math.sqrt(frame.shape[0] * frame.shape[1] / 65536.0)))
    sub = np.asarray(frame[::step, ::step, :3], dtype=np.float32)
    if frame.dtype == np.uint16:
        sub = sub / np.float32(257.0)
    elif frame.dtype != np.uint8 and float(sub.max(initial=0.0)) <= 1.0:
        sub = sub * np.float32(255.0)
    chroma = sub.max(axis=2) - sub.min(axis=2)
    return float(np.median(chroma))


class Orientation:
    """The flip/rotation that brings a displayed frame back to the physical orientation.

    Applied to the frame in this order: mirror left-right (``flip_horizontal``),
    mirror top-bottom (``flip_vertical``), then rotate **clockwise** on screen by
    ``rotate_deg`` (0, 90, 180 or 270). Configure the three so that the result is the
    image as the detector sees it from the source, i.e. what the geometry's pose
    convention expects.

    Pixel centres map exactly: ``out = A @ in + b`` with ``A`` a signed permutation.

    Parameters
    ----------
    size_px : (width, height)
        Of the input frame.
    flip_horizontal, flip_vertical : bool
    rotate_deg : int
    """

    def __init__(self, size_px: tuple[int, int], flip_horizontal: bool = False,
                 flip_vertical: bool = False, rotate_deg: int = 0):
        if isinstance(rotate_deg, bool) or rotate_deg not in ROTATIONS_DEG:
            raise InputError(f"must be one of {ROTATIONS_DEG}, got {rotate_deg!r}", "rotate_deg")
        w, h = int(size_px[0]), int(size_px[1])
        self.in_size_px = (w, h)
        self.flip_horizontal = bool(flip_horizontal)
        self.flip_vertical = bool(flip_vertical)
        self.rotate_deg = int(rotate_deg)
        a = np.eye(2)
        b = np.zeros(2)
        if self.flip_horizontal:
            a, b = np.diag([-1.0, 1.0]) @ a, np.diag([-1.0, 1.0]) @ b + [w - 1, 0]
        if self.flip_vertical:
            a, b = np.diag([1.0, -1.0]) @ a, np.diag([1.0, -1.0]) @ b + [0, h - 1]
        cw, ch = w, h
        for _ in range(self.rotate_deg // 90):  # a clockwise quarter turn on screen
            r = np.array([[0.0, -1.0], [1.0, 0.0]])  # (u, v) -> (ch - 1 - v, u)
            a, b = r @ a, r @ b + [ch - 1, 0]
            cw, ch = ch, cw
        self.out_size_px = (cw, ch)
        self.matrix = a
        self.offset = b

    @property
    def is_identity(self) -> bool:
        return not (self.flip_horizontal or self.flip_vertical or self.rotate_deg)

    def apply_points(self, uv_px) -> np.ndarray:
        """Map (N, 2) pixel positions (u, v) of the input frame to the output."""
        p = np.asarray(uv_px, dtype=np.float64).reshape(-1, 2)
        return p @ self.matrix.T + self.offset

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        """Flip/rotate an (H, W[, C]) array (a contiguous copy; the input when identity)."""
        if self.is_identity:
            return image
        if image.shape[1] != self.in_size_px[0] or image.shape[0] != self.in_size_px[1]:
            raise InputError(f"has shape {image.shape[:2]}, expected (H, W) = "
                             f"{self.in_size_px[::-1]}", "image")
        is_bool = image.dtype == bool
        out = image.view(np.uint8) if is_bool else image
        if self.flip_horizontal and self.flip_vertical:
            out = cv2.flip(out, -1)
        elif self.flip_horizontal:
            out = cv2.flip(out, 1)
        elif self.flip_vertical:
            out = cv2.flip(out, 0)
        code = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}
        if self.rotate_deg:
            out = cv2.rotate(out, code[self.rotate_deg])
        out = np.ascontiguousarray(out)
        if is_bool:
            out = out.view(bool)
        return np.ascontiguousarray(out)

    def apply_geometry(self, geometry: CArmGeometry) -> CArmGeometry:
        """The geometry of the output pixels (see the module docstring).

        ``geometry`` describes the input frame's pixels: its principal point is where
        the central ray pierces the frame as delivered and its pixel spacing is along
        the delivered u and v; its distortion is on the delivered normalised
        coordinates. Radial terms do not change; the tangential pair transforms as
        the vector ``(p2, p1)``.
        """
        if self.is_identity:
            return geometry
        a = self.matrix
        u0, v0 = self.apply_points([geometry.principal_point_px])[0]
        absa = np.abs(a)
        px, py = absa @ np.asarray(geometry.pixel_spacing_mm)
        dist = geometry.distortion
        if dist is not None:
            k1, k2, p1, p2, k3 = dist
            q2, q1 = a @ np.array([p2, p1])
            dist = np.array([k1, k2, q1, q2, k3])
        return geometry.with_changes(image_size_px=self.out_size_px, principal_point_px=(u0, v0),
                                     pixel_spacing_mm=(px, py), distortion=dist)

    def __repr__(self) -> str:
        return (f"Orientation(size_px={self.in_size_px}, flip_horizontal={self.flip_horizontal}, "
                f"flip_vertical={self.flip_vertical}, rotate_deg={self.rotate_deg})")
