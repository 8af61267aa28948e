"""A frame's geometry and field of view carried through region, flips, crop and undistortion.

The pixel operations of :func:`~or_assist.video.preprocess.shot.preprocess_shot` change
which pixel shows which ray; these helpers change the geometry and the field of view with
them, so :func:`or_assist.core.geometry.project` keeps hitting the same anatomy.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from or_assist.core.geometry import CArmGeometry, distort_normalized, undistort_normalized
from or_assist.errors import InputError
from or_assist.video.preprocess.fov import FieldOfView
from or_assist.video.preprocess.fov_fit import fit_circle
from or_assist.video.preprocess.frame import Orientation

__all__ = ["apply_distortion", "frame_geometry", "orient_fov", "shift_fov", "undistort_fov", "undistort_maps"]


def apply_distortion(p: np.ndarray, undist: CArmGeometry, dist: CArmGeometry, inverse: bool) -> np.ndarray:
    """Undistorted pixels -> distorted pixels (``inverse=False``) or back."""
    u0, v0 = dist.principal_point_px
    xn, yn = (p[:, 0] - u0) / dist.fx, (p[:, 1] - v0) / dist.fy
    if inverse:
        xn, yn = undistort_normalized(xn, yn, dist.distortion)
    else:
        xn, yn = distort_normalized(xn, yn, dist.distortion)
    return np.stack([xn * dist.fx + u0, yn * dist.fy + v0], axis=1)


def frame_geometry(geometry, size_px, region) -> CArmGeometry:
    if not isinstance(geometry, CArmGeometry):
        raise InputError(f"expected a CArmGeometry, got {type(geometry).__name__}", "geometry")
    w, h = size_px
    if region is None:
        if geometry.image_size_px != (w, h):
            raise InputError(f"describes a {geometry.width} x {geometry.height} image but the frame is "
                             f"{w} x {h}; give the frame's geometry or settings.geometry_region_px",
                             "geometry")
        return geometry
    u, v, rw, rh = region
    if u + rw > w or v + rh > h:
        raise InputError(f"region {region} does not fit the {w} x {h} frame", "geometry_region_px")
    su, sv = rw / geometry.width, rh / geometry.height
    u0, v0 = geometry.principal_point_px
    px, py = geometry.pixel_spacing_mm
    return geometry.with_changes(image_size_px=(w, h), pixel_spacing_mm=(px / su, py / sv),
                                 principal_point_px=((u0 + 0.5) * su - 0.5 + u, (v0 + 0.5) * sv - 0.5 + v))


def orient_fov(fov: FieldOfView, orient: Orientation) -> FieldOfView:
    if orient.is_identity:
        return fov
    if fov.shape == "circle":
        c = orient.apply_points([fov.center_px])[0]
        return FieldOfView("circle", (c[0], c[1]), radius_px=fov.radius_px)
    u0, v0, u1, v1 = fov.box_px
    p = orient.apply_points([[u0, v0], [u1, v1]])
    lo, hi = p.min(axis=0), p.max(axis=0)
    return FieldOfView("rectangle", tuple((lo + hi) / 2), box_px=(lo[0], lo[1], hi[0], hi[1]))


def shift_fov(fov: FieldOfView, du: float, dv: float) -> FieldOfView:
    cu, cv = fov.center_px
    if fov.shape == "circle":
        return FieldOfView("circle", (cu + du, cv + dv), radius_px=fov.radius_px)
    u0, v0, u1, v1 = fov.box_px
    return FieldOfView("rectangle", (cu + du, cv + dv), box_px=(u0 + du, v0 + dv, u1 + du, v1 + dv))


def undistort_fov(fov: FieldOfView, geom: CArmGeometry) -> FieldOfView:
    """The field's edge mapped into the undistorted image (circle refitted, box kept inside)."""
    t = np.linspace(0, 2 * np.pi, 72, endpoint=False)
    if fov.shape == "circle":
        pts = np.array(fov.center_px) + fov.radius_px * np.stack([np.cos(t), np.sin(t)], axis=1)
    else:
        u0, v0, u1, v1 = fov.box_px
        s = np.linspace(0.0, 1.0, 18)
        pts = np.concatenate([np.stack([u0 + (u1 - u0) * s, np.full_like(s, v0)], 1),
                              np.stack([u0 + (u1 - u0) * s, np.full_like(s, v1)], 1),
                              np.stack([np.full_like(s, u0), v0 + (v1 - v0) * s], 1),
                              np.stack([np.full_like(s, u1), v0 + (v1 - v0) * s], 1)])
    q = apply_distortion(pts, geom, geom, inverse=True)
    if fov.shape == "circle":
        cu, cv, r = fit_circle(q, (fov.center_px[0], fov.center_px[1], fov.radius_px))
        res = np.hypot(q[:, 0] - cu, q[:, 1] - cv)
        return FieldOfView("circle", (cu, cv), radius_px=float(res.min()))
    n = 18
    u0, u1 = q[2 * n:3 * n, 0].max(), q[3 * n:, 0].min()
    v0, v1 = q[:n, 1].max(), q[n:2 * n, 1].min()
    return FieldOfView("rectangle", ((u0 + u1) / 2, (v0 + v1) / 2), box_px=(u0, v0, u1, v1))


@functools.lru_cache(maxsize=4)
def _undistort_maps_cached(key: str, geom: CArmGeometry):
    mx, my = cv2.initUndistortRectifyMap(geom.K, np.asarray(geom.distortion), None, geom.K,
                                         geom.image_size_px, cv2.CV_32FC1)
    return mx, my


def undistort_maps(geom: CArmGeometry):
    """float32 maps: for each undistorted pixel, where to read the distorted image."""
    return _undistort_maps_cached(str(geom.to_dict()), geom)
