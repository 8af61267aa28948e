"""Fast 2-D initialisation: in-plane shift, rotation and scale of a shot against a view.

A view (a DRR at the start pose, or a precomputed view of the library) is compared with
the shot on gradient-magnitude images: for each candidate in-plane rotation and scale the
warped view is phase-correlated with the shot for the shift, and the candidate whose
shifted view has the highest gradient correlation wins. The 2-D similarity transform is
then turned into a pose update (:func:`pose_from_2d`): a rotation about the central ray,
a depth change for the scale and a lateral translation for the shift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from or_assist.core.geometry import CArmGeometry
from or_assist.core.pose import Pose
from or_assist.register.similarity import prepare_fixed

__all__ = ["Alignment2D", "similarity_matrix", "align_2d", "pose_from_2d", "resample_to_geometry"]

DEFAULT_ANGLES_DEG = tuple(np.arange(-12.0, 12.1, 3.0))
DEFAULT_SCALES = (1.0,)


@dataclass(frozen=True)
class Alignment2D:
    """A 2-D similarity transform mapping view pixels onto shot pixels.

    ``p_shot = scale * R(angle) (p_view - c) + c + shift``, with ``c`` the principal point.
    """

    shift_px: tuple[float, float]
    angle_deg: float
    scale: float
    score: float


def similarity_matrix(center_px: Sequence[float], angle_deg: float, scale: float,
                      shift_px: Sequence[float]) -> np.ndarray:
    """(2, 3) float64 affine matrix of :class:`Alignment2D` (view -> shot pixels)."""
    a = math.radians(angle_deg)
    m = scale * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    c = np.asarray(center_px, dtype=np.float64)
    return np.hstack([m, (c + np.asarray(shift_px, dtype=np.float64) - m @ c)[:, None]])


def _edges(image: np.ndarray, mask: np.ndarray, sigma_px: float) -> np.ndarray:
    img = cv2.GaussianBlur(image.astype(np.float32), (0, 0), sigma_px)
    gx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3)
    mag = np.sqrt(gx * gx + gy * gy)
    if mask is None:
        return mag - np.float32(mag.mean())
    inner = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    vals = mag[inner]
    return np.where(inner, mag - (vals.mean() if vals.size else 0.0), 0.0).astype(np.float32)


def align_2d(shot: np.ndarray, shot_mask: np.ndarray, view: np.ndarray, center_px: Sequence[float], *,
             angles_deg: Sequence[float] = DEFAULT_ANGLES_DEG, scales: Sequence[float] = DEFAULT_SCALES,
             metric: str = "gc", max_shift_fraction: float = 0.3) -> Alignment2D:
    """Best 2-D similarity transform of ``view`` onto ``shot`` (module doc).

    Parameters
    ----------
    shot : (N, N) float array
        Attenuation-like shot image.
    shot_mask : (N, N) bool array
    view : (N, N) float array
        Line integrals of the view, resampled to the shot's pixel grid.
    center_px : (2,)
        Rotation and scale centre (the principal point), pixels.
    angles_deg, scales : sequences
        Candidates.
    metric : str
        Similarity used to rank the candidates.
    max_shift_fraction : float
        Shifts beyond this fraction of the image side are not accepted.

    Returns
    -------
    Alignment2D
    """
    n = shot.shape[1], shot.shape[0]
    sigma = max(0.6, shot.shape[0] / 96.0)
    fixed_edges = _edges(shot, shot_mask, sigma)
    window = cv2.createHanningWindow(n, cv2.CV_32F)
    fixed = prepare_fixed(shot, shot_mask, metric)
    best = Alignment2D((0.0, 0.0), 0.0, 1.0, fixed.score(view))
    max_shift = max_shift_fraction * shot.shape[0]
    for s in scales:
        for a in angles_deg:
            m = similarity_matrix(center_px, a, s, (0.0, 0.0))
            warped = cv2.warpAffine(view.astype(np.float32), m, n, flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REPLICATE)
            (du, dv), _ = cv2.phaseCorrelate(_edges(warped, None, sigma), fixed_edges, window)
            if math.hypot(du, dv) > max_shift:
                du, dv = 0.0, 0.0
            m2 = similarity_matrix(center_px, a, s, (du, dv))
            moved = cv2.warpAffine(view.astype(np.float32), m2, n, flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REPLICATE)
            score = fixed.score(moved)
            if score > best.score:
                best = Alignment2D((float(du), float(dv)), float(a), float(s), float(score))
    return best


def pose_from_2d(pose: Pose, alignment: Alignment2D, geometry: CArmGeometry) -> Pose:
    """The pose whose projection is ``pose``'s moved by ``alignment`` (for the isocentre depth).

    Rotation about the central ray by the angle, a depth change ``d (1/scale - 1)`` of the
    anatomy (``d`` the source-to-isocentre distance) and a lateral translation giving the
    shift at the new depth.

    Parameters
    ----------
    pose : Pose
        Of the view.
    alignment : Alignment2D
        In pixels of ``geometry``.
    geometry : CArmGeometry
        Of the pixels the alignment was measured in.
    """
    a = math.radians(alignment.angle_deg)
    rz = np.eye(4)
    rz[:2, :2] = [[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]
    d = geometry.source_to_isocenter_mm
    depth = d / alignment.scale
    t = np.eye(4)
    t[0, 3] = alignment.shift_px[0] * geometry.pixel_spacing_mm[0] * depth / geometry.sid_mm
    t[1, 3] = alignment.shift_px[1] * geometry.pixel_spacing_mm[1] * depth / geometry.sid_mm
    t[2, 3] = depth - d
    return Pose(t @ rz @ pose.matrix)


def resample_to_geometry(image: np.ndarray, from_geometry: CArmGeometry, to_geometry: CArmGeometry) -> np.ndarray:
    """Resample a detector image between two pixel grids of the same C-arm (same SID).

    Parameters
    ----------
    image : (H, W) float array
        In ``from_geometry``'s pixels.
    from_geometry, to_geometry : CArmGeometry
        Without distortion; the normalised ray coordinates are matched.

    Returns
    -------
    (h, w) float32 ndarray
        In ``to_geometry``'s pixels (edges replicated).
    """
    sx = from_geometry.fx / to_geometry.fx
    sy = from_geometry.fy / to_geometry.fy
    u0f, v0f = from_geometry.principal_point_px
    u0t, v0t = to_geometry.principal_point_px
    # u_from = sx (u_to - u0t) + u0f ; the map takes destination -> source (WARP_INVERSE_MAP)
    m = np.array([[sx, 0.0, u0f - sx * u0t], [0.0, sy, v0f - sy * v0t]])
    interp = cv2.INTER_AREA if sx > 1.5 else cv2.INTER_LINEAR
    src = np.asarray(image, dtype=np.float32)
    if interp == cv2.INTER_AREA:  # pre-smooth, then sample (warpAffine has no area mode)
        src = cv2.GaussianBlur(src, (0, 0), 0.5 * sx)
    return cv2.warpAffine(src, m, to_geometry.image_size_px, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)
