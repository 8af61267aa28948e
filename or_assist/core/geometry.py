"""C-arm geometry: intrinsics, distortion, projection and back-projection.

This module and :mod:`or_assist.core.pose` (the pose type) are the one home of the
conventions in ``CONVENTIONS.md``:

* The patient frame is LPS in mm (as SimpleITK reports the CT).
* A pose is ``T_source_from_patient``: a 4 x 4 rigid transform mapping patient points to
  the source (camera) frame, whose origin is the focal spot, +z along the central ray
  towards the detector, +x along image columns u, +y along image rows v.
* Intrinsics ``K = [[sid/px, 0, u0], [0, sid/py, v0], [0, 0, 1]]``.
* Optional OpenCV distortion ``[k1, k2, p1, p2, k3]`` on normalised coordinates, applied
  last when projecting (the image holds the distorted picture).

Examples
--------
>>> import numpy as np
>>> pose = Pose(np.array([[1, 0, 0, 0], [0, 0, -1, 260], [0, 1, 0, 760], [0, 0, 0, 1.0]]))
>>> geom = CArmGeometry((1024, 1024), 1000.0, (0.3, 0.3), (512.0, 512.0), 600.0)
>>> project(np.array([[10.0, -160.0, 260.0]]), pose, geom).round(3)
array([[567.556, 512.   ]])
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from or_assist.core import jsonio
from or_assist.core.pose import Pose
from or_assist.core.validate import check_positive, check_vector, is_integer
from or_assist.errors import InputError, SchemaError

__all__ = [
    "CArmGeometry",
    "project",
    "project_with_depth",
    "backproject",
    "pixels_to_mm_at_depth",
    "distort_normalized",
    "undistort_normalized",
    "load_geometry",
    "save_geometry",
    "GEOMETRY_SCHEMA",
]

GEOMETRY_SCHEMA = "or_assist.geometry/1"

# --------------------------------------------------------------------------- geometry


@dataclass(frozen=True, eq=False)
class CArmGeometry:
    """A C-arm with its video calibration (``or_assist.geometry/1``).

    Parameters
    ----------
    image_size_px : (int, int)
        ``(width, height)`` = (columns, rows) of the image as shown.
    sid_mm : float
        Source-to-image (detector) distance.
    pixel_spacing_mm : (float, float)
        ``(px, py)``: mm of detector per image pixel along u and v.
    principal_point_px : (float, float)
        ``(u0, v0)``: where the central ray pierces the image.
    source_to_isocenter_mm : float
        Distance from the focal spot to the C-arm's isocentre.
    distortion : (5,) array_like or None
        OpenCV ``[k1, k2, p1, p2, k3]`` on normalised coordinates, or None.
    """

    image_size_px: tuple[int, int]
    sid_mm: float
    pixel_spacing_mm: tuple[float, float]
    principal_point_px: tuple[float, float]
    source_to_isocenter_mm: float
    distortion: np.ndarray | None = field(default=None)

    def __post_init__(self):
        w, h = _pair(self.image_size_px, "image_size_px", int)
        if w <= 0 or h <= 0:
            raise InputError(f"must be positive, got {(w, h)}", "image_size_px")
        px, py = _pair(self.pixel_spacing_mm, "pixel_spacing_mm", float)
        if not (px > 0 and py > 0):
            raise InputError(f"must be > 0, got {(px, py)}", "pixel_spacing_mm")
        u0, v0 = _pair(self.principal_point_px, "principal_point_px", float)
        for name in ("sid_mm", "source_to_isocenter_mm"):
            check_positive(getattr(self, name), name)
        if self.source_to_isocenter_mm >= self.sid_mm:
            raise InputError(
                f"must be smaller than sid_mm ({self.sid_mm}), got {self.source_to_isocenter_mm}",
                "source_to_isocenter_mm")
        dist = None
        if self.distortion is not None:
            dist = check_vector(self.distortion, 5, "distortion",
                                expected="null or 5 finite numbers [k1, k2, p1, p2, k3]")
            if not np.any(dist):
                dist = None
            else:
                dist.setflags(write=False)
        object.__setattr__(self, "image_size_px", (w, h))
        object.__setattr__(self, "pixel_spacing_mm", (px, py))
        object.__setattr__(self, "principal_point_px", (u0, v0))
        object.__setattr__(self, "sid_mm", float(self.sid_mm))
        object.__setattr__(self, "source_to_isocenter_mm", float(self.source_to_isocenter_mm))
        object.__setattr__(self, "distortion", dist)

    # derived ---------------------------------------------------------------
    @property
    def width(self) -> int:
        return self.image_size_px[0]

    @property
    def height(self) -> int:
        return self.image_size_px[1]

    @property
    def fx(self) -> float:
        """Focal length along u in pixels (``sid / px``)."""
        return self.sid_mm / self.pixel_spacing_mm[0]

    @property
    def fy(self) -> float:
        """Focal length along v in pixels (``sid / py``)."""
        return self.sid_mm / self.pixel_spacing_mm[1]

    @property
    def K(self) -> np.ndarray:  # noqa: N802 - the conventional name
        """(3, 3) intrinsic matrix."""
        u0, v0 = self.principal_point_px
        return np.array([[self.fx, 0.0, u0], [0.0, self.fy, v0], [0.0, 0.0, 1.0]])

    @property
    def magnification(self) -> float:
        """Magnification of an object at the isocentre (``sid / source_to_isocentre``)."""
        return self.sid_mm / self.source_to_isocenter_mm

    @property
    def detector_size_mm(self) -> tuple[float, float]:
        """(width, height) of the imaged detector area in mm."""
        return (self.width * self.pixel_spacing_mm[0], self.height * self.pixel_spacing_mm[1])

    # variants ---------------------------------------------------------------
    def downsampled(self, factor: int) -> "CArmGeometry":
        """The same C-arm with pixels binned ``factor`` x ``factor`` (for pyramids).

        Pixel centres stay consistent: new pixel ``(0, 0)`` covers old pixels
        ``0..factor-1``, so ``u_new = (u_old + 0.5) / factor - 0.5``.
        """
        if not isinstance(factor, (int, np.integer)) or factor < 1:
            raise InputError(f"must be an integer >= 1, got {factor!r}", "factor")
        u0, v0 = self.principal_point_px
        return CArmGeometry(
            (self.width // factor, self.height // factor), self.sid_mm,
            (self.pixel_spacing_mm[0] * factor, self.pixel_spacing_mm[1] * factor),
            ((u0 + 0.5) / factor - 0.5, (v0 + 0.5) / factor - 0.5),
            self.source_to_isocenter_mm, self.distortion)

    def resampled(self, width: int, height: int) -> "CArmGeometry":
        """The same field on a ``width`` x ``height`` pixel grid (area resampling: the
        field's outer pixel edges stay put, ``u_new = (u_old + 0.5) * width / W - 0.5``)."""
        for name, n in (("width", width), ("height", height)):
            if not is_integer(n) or n < 1:
                raise InputError(f"must be an integer >= 1, got {n!r}", name)
        sx, sy = width / self.width, height / self.height
        (px, py), (u0, v0) = self.pixel_spacing_mm, self.principal_point_px
        return self.with_changes(image_size_px=(int(width), int(height)), pixel_spacing_mm=(px / sx, py / sy),
                                 principal_point_px=((u0 + 0.5) * sx - 0.5, (v0 + 0.5) * sy - 0.5))

    def cropped(self, u_min: int, v_min: int, width: int, height: int) -> "CArmGeometry":
        """The sub-image ``[v_min:v_min+height, u_min:u_min+width]`` as its own geometry."""
        if width <= 0 or height <= 0:
            raise InputError(f"crop size must be positive, got {(width, height)}", "width/height")
        u0, v0 = self.principal_point_px
        return CArmGeometry((width, height), self.sid_mm, self.pixel_spacing_mm,
                            (u0 - u_min, v0 - v_min), self.source_to_isocenter_mm, self.distortion)

    def with_changes(self, **changes) -> "CArmGeometry":
        """A copy with some fields replaced (validated again)."""
        kw = {k: getattr(self, k) for k in ("image_size_px", "sid_mm", "pixel_spacing_mm",
                                            "principal_point_px", "source_to_isocenter_mm", "distortion")}
        kw.update(changes)
        return CArmGeometry(**kw)

    def __eq__(self, other) -> bool:
        if not isinstance(other, CArmGeometry):
            return False
        return self.to_dict() == other.to_dict()

    def __hash__(self):
        return hash(str(self.to_dict()))

    # files -------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The ``or_assist.geometry/1`` document."""
        return {
            "schema": GEOMETRY_SCHEMA,
            "image_size": list(self.image_size_px),
            "sid_mm": self.sid_mm,
            "pixel_spacing_mm": list(self.pixel_spacing_mm),
            "principal_point_px": list(self.principal_point_px),
            "source_to_isocenter_mm": self.source_to_isocenter_mm,
            "distortion": None if self.distortion is None else self.distortion.tolist(),
        }

    @classmethod
    def from_dict(cls, doc: dict, where: str = "geometry") -> "CArmGeometry":
        """Parse an ``or_assist.geometry/1`` document; errors name ``where`` and the field."""
        jsonio.check_schema(doc, GEOMETRY_SCHEMA, where)
        size = jsonio.field_array(doc, "image_size", where, (2,))
        if np.any(size <= 0) or np.any(size != np.round(size)):
            raise SchemaError(f"field 'image_size' must be two positive integers [width, height], "
                              f"got {size.tolist()}", where)
        if np.any(size < MIN_IMAGE_SIDE_PX) or np.any(size > MAX_IMAGE_SIDE_PX):
            raise SchemaError(f"field 'image_size' must be {MIN_IMAGE_SIDE_PX}..{MAX_IMAGE_SIDE_PX} px per side "
                              f"(a detector grid or video frame), got {[int(v) for v in size]}", where)
        spacing = jsonio.field_array(doc, "pixel_spacing_mm", where, (2,))
        if np.any(spacing <= 0):
            raise SchemaError(f"field 'pixel_spacing_mm' must be > 0, got {spacing.tolist()}", where)
        pp = jsonio.field_array(doc, "principal_point_px", where, (2,))
        sid = jsonio.field_float(doc, "sid_mm", where, positive=True)
        s2i = jsonio.field_float(doc, "source_to_isocenter_mm", where, positive=True)
        dist = jsonio.field(doc, "distortion", where, None)
        if dist is not None:
            dist = jsonio.field_array(doc, "distortion", where, (5,))
        try:
            return cls((int(size[0]), int(size[1])), sid, (float(spacing[0]), float(spacing[1])),
                       (float(pp[0]), float(pp[1])), s2i, dist)
        except InputError as exc:
            raise SchemaError(str(exc), where) from None


#: Image side accepted in a geometry file (px): a detector grid or a video frame up to 8K.
MIN_IMAGE_SIDE_PX = 4
MAX_IMAGE_SIDE_PX = 8192


def _pair(value, name: str, kind):
    try:
        a, b = value
        return kind(a), kind(b)
    except (TypeError, ValueError):
        raise InputError(f"must be a pair of numbers, got {value!r}", name) from None


def load_geometry(path: str | os.PathLike) -> CArmGeometry:
    """Read an ``or_assist.geometry/1`` file."""
    doc = jsonio.read_json(path, GEOMETRY_SCHEMA)
    return CArmGeometry.from_dict(doc, str(path))


def save_geometry(geometry: CArmGeometry, path: str | os.PathLike) -> Path:
    """Write ``geometry`` as ``or_assist.geometry/1``."""
    return jsonio.write_json(path, geometry.to_dict())


# --------------------------------------------------------------------------- distortion


def distort_normalized(xn: np.ndarray, yn: np.ndarray, coeffs: np.ndarray | None):
    """Apply OpenCV's ``[k1, k2, p1, p2, k3]`` model to normalised coordinates."""
    if coeffs is None:
        return xn, yn
    k1, k2, p1, p2, k3 = coeffs
    r2 = xn * xn + yn * yn
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xd = xn * radial + 2 * p1 * xn * yn + p2 * (r2 + 2 * xn * xn)
    yd = yn * radial + p1 * (r2 + 2 * yn * yn) + 2 * p2 * xn * yn
    return xd, yd


def undistort_normalized(xd: np.ndarray, yd: np.ndarray, coeffs: np.ndarray | None,
                         iterations: int = 30):
    """Invert :func:`distort_normalized` by Gauss-Newton iteration (exact to ~1e-12)."""
    if coeffs is None:
        return xd, yd
    xd = np.asarray(xd, dtype=np.float64)
    yd = np.asarray(yd, dtype=np.float64)
    x, y = xd.copy(), yd.copy()
    h = 1e-7
    for _ in range(iterations):
        fx, fy = distort_normalized(x, y, coeffs)
        ex, ey = fx - xd, fy - yd
        if np.all(np.abs(ex) + np.abs(ey) < 1e-13):
            break
        # numeric 2x2 Jacobian, per point
        ax, ay = distort_normalized(x + h, y, coeffs)
        bx, by = distort_normalized(x, y + h, coeffs)
        j11, j21 = (ax - fx) / h, (ay - fy) / h
        j12, j22 = (bx - fx) / h, (by - fy) / h
        det = j11 * j22 - j12 * j21
        det = np.where(np.abs(det) < 1e-12, 1e-12, det)
        x = x - (j22 * ex - j12 * ey) / det
        y = y - (-j21 * ex + j11 * ey) / det
    return x, y


# --------------------------------------------------------------------------- projection


def project_with_depth(points_lps_mm: np.ndarray, pose: Pose, geometry: CArmGeometry,
                       distort: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Project patient points to image pixels, also returning their depth.

    Parameters
    ----------
    points_lps_mm : (N, 3) or (3,) array_like
        Points in the patient frame, mm.
    pose : Pose
        ``T_source_from_patient``.
    geometry : CArmGeometry
    distort : bool
        Apply the geometry's distortion (the image on file is the distorted one).

    Returns
    -------
    uv : (N, 2) float64
        (column, row) pixels; NaN for points at or behind the source (depth <= 0).
    depth_mm : (N,) float64
        Source-frame z: distance from the source along the central ray.
    """
    p = np.asarray(points_lps_mm, dtype=np.float64)
    single = p.ndim == 1
    p = np.atleast_2d(p)
    x = pose.apply(p)
    depth = x[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        xn = np.where(depth > 0, x[:, 0] / depth, np.nan)
        yn = np.where(depth > 0, x[:, 1] / depth, np.nan)
    if distort:
        xn, yn = distort_normalized(xn, yn, geometry.distortion)
    u0, v0 = geometry.principal_point_px
    uv = np.stack([geometry.fx * xn + u0, geometry.fy * yn + v0], axis=1)
    if single:
        return uv[0], depth[0]
    return uv, depth


def project(points_lps_mm: np.ndarray, pose: Pose, geometry: CArmGeometry,
            distort: bool = True) -> np.ndarray:
    """Project patient points (N, 3) mm to (N, 2) pixels (u, v); see :func:`project_with_depth`."""
    return project_with_depth(points_lps_mm, pose, geometry, distort)[0]


def backproject(uv_px: np.ndarray, pose: Pose, geometry: CArmGeometry,
                distorted: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Rays through image pixels, in the patient frame.

    Parameters
    ----------
    uv_px : (N, 2) or (2,) array_like
        Pixel positions (u, v).
    pose : Pose
        ``T_source_from_patient``.
    geometry : CArmGeometry
    distorted : bool
        The pixels are in the distorted image (undistort them first).

    Returns
    -------
    origin_lps_mm : (3,) float64
        The source position (every ray starts there).
    directions_lps : (N, 2)->(N, 3) float64
        Unit ray directions, towards the detector.
    """
    uv = np.asarray(uv_px, dtype=np.float64)
    single = uv.ndim == 1
    uv = np.atleast_2d(uv)
    u0, v0 = geometry.principal_point_px
    xn = (uv[:, 0] - u0) / geometry.fx
    yn = (uv[:, 1] - v0) / geometry.fy
    if distorted:
        xn, yn = undistort_normalized(xn, yn, geometry.distortion)
    d_src = np.stack([xn, yn, np.ones_like(xn)], axis=1)
    d_src /= np.linalg.norm(d_src, axis=1, keepdims=True)
    d = d_src @ pose.rotation  # R^T applied to each row vector
    return pose.source_position_lps_mm, (d[0] if single else d)


def pixels_to_mm_at_depth(pixels: float | np.ndarray, depth_mm: float | np.ndarray,
                          geometry: CArmGeometry, axis: int = 0) -> float | np.ndarray:
    """Convert an image distance in pixels to mm at a depth (CONVENTIONS).

    ``mm = pixels * p * depth / sid`` with ``p`` the pixel spacing along ``axis``
    (0 = u, 1 = v). At the isocentre use ``depth_mm = source_to_isocenter_mm``.
    """
    return np.asarray(pixels) * geometry.pixel_spacing_mm[axis] * np.asarray(depth_mm) / geometry.sid_mm
