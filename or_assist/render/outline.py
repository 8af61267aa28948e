"""Implants and guide pins as seen in an image: their meshes and exact outlines.

:func:`implant_outline` gives the silhouette polygon of the projected mesh, exact
because the mesh is convex and in front of the source (a perspective projection keeps
convex sets convex, so the silhouette is the convex hull of the projected vertices). With
lens distortion the hull edges are sampled every ``edge_step_px`` and distorted, so the
curved edges are honoured. Plus the projected axis (entry -> apex for an implant, back
end -> tip for a pin) and depths. Frames as in ``CONVENTIONS.md`` (LPS mm, pose
``T_source_from_patient``, pixel centres at integer (u, v), distortion applied last).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from or_assist.core.geometry import (
    CArmGeometry,
    distort_normalized,
    project_with_depth,
)
from or_assist.core.instruments import GuidePin, guide_pin_mesh
from or_assist.core.plan import Implant, implant_mesh
from or_assist.core.polygon import convex_hull_2d, polygon_centroid, polygon_contains
from or_assist.core.pose import Pose
from or_assist.errors import InputError
from or_assist.render.drr import as_pose

__all__ = ["object_mesh", "ImplantOutline", "implant_outline", "silhouette_px"]


def object_mesh(obj, name: str = "object") -> tuple[np.ndarray, np.ndarray]:
    """The closed convex mesh of an :class:`Implant`, a :class:`GuidePin` or a ``(V, F)`` pair.

    Returns
    -------
    vertices : (V, 3) float64, LPS mm
    faces : (F, 3) int64
    """
    if isinstance(obj, Implant):
        v, f = implant_mesh(obj)
    elif isinstance(obj, GuidePin):
        v, f = guide_pin_mesh(obj)
    elif isinstance(obj, tuple) and len(obj) == 2:
        v, f = obj
    else:
        raise InputError(f"expected an Implant, a GuidePin or a (vertices, faces) pair, got "
                         f"{type(obj).__name__}", name)
    try:
        v = np.asarray(v, dtype=np.float64)
        f = np.asarray(f)
    except (TypeError, ValueError):
        raise InputError("vertices must be numeric (V, 3), faces integer (F, 3)", name) from None
    if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] < 4 or not np.all(np.isfinite(v)):
        raise InputError(f"vertices must be a finite (V >= 4, 3) array, got shape {v.shape}", name)
    if f.ndim != 2 or f.shape[1] != 3 or f.shape[0] < 4 or not np.issubdtype(f.dtype, np.integer) \
            or f.min() < 0 or f.max() >= len(v):
        raise InputError(f"faces must be an integer (F >= 4, 3) array of vertex indices, got shape "
                         f"{f.shape}, dtype {f.dtype}", name)
    return v, f.astype(np.int64)


@dataclass(frozen=True, eq=False)
class ImplantOutline:
    """An implant or pin as seen in one image (for overlays).

    Attributes
    ----------
    id : str
        The implant's or pin's id.
    silhouette_px : (K, 2) float64
        The outline polygon (u, v) in pixels, in order, closed (the last point connects to
        the first; not repeated), positive shoelace area in (u, v). Convex without
        distortion; with distortion, the hull edges sampled and distorted.
    entry_px, apex_px : (2,) float64
        Projected axis ends: implant entry and apex; for a pin, back end and tip.
    entry_depth_mm, apex_depth_mm : float
        Their distance from the source along the central ray (source-frame z).
    """

    id: str
    silhouette_px: np.ndarray
    entry_px: np.ndarray
    apex_px: np.ndarray
    entry_depth_mm: float
    apex_depth_mm: float

    @property
    def axis_px(self) -> np.ndarray:
        """(2, 2) float64: rows ``entry_px`` and ``apex_px``."""
        return np.stack([self.entry_px, self.apex_px])

    @property
    def centroid_px(self) -> np.ndarray:
        """(2,) area centroid of the silhouette polygon."""
        return polygon_centroid(self.silhouette_px)

    def contains(self, points_px: np.ndarray, margin_px: float = 0.0) -> np.ndarray:
        """Whether (N, 2) points lie inside the silhouette dilated by ``margin_px``."""
        return polygon_contains(points_px, self.silhouette_px, margin_px)


def silhouette_px(vertices_lps_mm: np.ndarray, pose: Pose, geometry: CArmGeometry,
                  edge_step_px: float = 1.0, *, name: str = "vertices_lps_mm") -> np.ndarray:
    """The outline polygon of a convex object's projection (see :class:`ImplantOutline`).

    Parameters
    ----------
    vertices_lps_mm : (V, 3) array_like
        Vertices of a convex object, LPS mm, all in front of the source.
    pose : Pose
    geometry : CArmGeometry
    edge_step_px : float
        With distortion, the spacing (undistorted pixels) at which hull edges are sampled.
    name : str
        What the vertices are called in an error message.

    Returns
    -------
    (K, 2) float64
    """
    v = np.asarray(vertices_lps_mm, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 3 or len(v) < 3 or not np.all(np.isfinite(v)):
        raise InputError(f"must be a finite (V >= 3, 3) array, got shape {v.shape}", name)
    if not (isinstance(edge_step_px, (int, float)) and 0 < edge_step_px < np.inf):
        raise InputError(f"must be a number > 0, got {edge_step_px!r}", "edge_step_px")
    if not isinstance(geometry, CArmGeometry):
        raise InputError(f"expected a CArmGeometry, got {type(geometry).__name__}", "geometry")
    return _silhouette(v, as_pose(pose), geometry, float(edge_step_px), name)


def _silhouette(v: np.ndarray, pose: Pose, geom: CArmGeometry, step_px: float, name: str) -> np.ndarray:
    uv, depth = project_with_depth(v, pose, geom, distort=False)
    if np.any(depth <= 0):
        raise InputError("lies (partly) at or behind the X-ray source; it has no projection", name)
    hull = convex_hull_2d(uv)
    if geom.distortion is None:
        return hull
    nxt = np.roll(hull, -1, axis=0)
    pts = []
    for a, b in zip(hull, nxt):
        n = max(1, int(np.ceil(np.linalg.norm(b - a) / step_px)))
        pts.append(a + (b - a) * (np.arange(n) / n)[:, None])
    pts = np.vstack(pts)
    u0, v0 = geom.principal_point_px
    xd, yd = distort_normalized((pts[:, 0] - u0) / geom.fx, (pts[:, 1] - v0) / geom.fy, geom.distortion)
    return np.column_stack([geom.fx * xd + u0, geom.fy * yd + v0])


def implant_outline(obj, pose: Pose, geometry: CArmGeometry, *, edge_step_px: float = 1.0) -> ImplantOutline:
    """The projected outline, axis and depths of an implant or guide pin.

    Parameters
    ----------
    obj : Implant or GuidePin
    pose : Pose
        ``T_source_from_patient``; the object must lie in front of the source.
    geometry : CArmGeometry
    edge_step_px : float
        Edge sampling with distortion (:func:`silhouette_px`).

    Returns
    -------
    ImplantOutline
        For a pin, ``entry`` is the back end and ``apex`` the tip.
    """
    if isinstance(obj, Implant):
        ends = np.stack([obj.entry_lps_mm, obj.apex_lps_mm])
    elif isinstance(obj, GuidePin):
        ends = np.stack([obj.back_lps_mm, obj.tip_lps_mm])
    else:
        raise InputError(f"expected an Implant or a GuidePin, got {type(obj).__name__}", "obj")
    if not isinstance(geometry, CArmGeometry):
        raise InputError(f"expected a CArmGeometry, got {type(geometry).__name__}", "geometry")
    if not (isinstance(edge_step_px, (int, float)) and 0 < edge_step_px < np.inf):
        raise InputError(f"must be a number > 0, got {edge_step_px!r}", "edge_step_px")
    pose = as_pose(pose)
    v, _ = object_mesh(obj, obj.id)
    poly = _silhouette(v, pose, geometry, float(edge_step_px), obj.id)
    uv, depth = project_with_depth(ends, pose, geometry)
    return ImplantOutline(obj.id, poly, uv[0], uv[1], float(depth[0]), float(depth[1]))
