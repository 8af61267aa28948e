"""Live distances of a planned implant to the landmarks and to the anterior sacral cortex.

The planner's side panel shows, for the active implant, the surface distance to every
landmark (foramina, spinal canal, promontory, alar line, SI joint points: the envelope
of :func:`or_assist.planning.measure.implant_surface_distance_mm` minus the landmark's
radius) and the distance from the apex region to the anterior sacral cortex.

Anterior cortex (:func:`anterior_cortex_distance_mm`): too ventral an implant endangers
the L5 root on the ala and the iliac vessels. From axis points over the last
``region_mm`` of the implant (the apex region), the CT is sampled along the patient's
anterior direction (perpendicular to the axis); the anterior cortex is the first sample
with HU >= ``cortex_hu`` that is followed by at least ``gap_mm`` without bone (the
pelvic cavity in front of the sacrum). Marrow of an osteoporotic ala (0-60 HU) and
muscle look alike in HU, so the cortex, not the marrow, decides. The distance is from
the implant's envelope surface (circumradius, tapering over the tip) to that cortex
point; negative when the cortex lies inside the envelope (a breach). None when no
cortex is found within ``max_mm``.

Colour status (:func:`distance_status`): ``"ok"`` >= ``warn_mm`` (5 mm), ``"warn"`` from
the minimum clearance (2 mm) to 5 mm, ``"bad"`` below the minimum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from or_assist.core.carm import patient_axes
from or_assist.core.plan import Implant, Plan

__all__ = ["Measurement", "distance_status", "anterior_cortex_distance_mm", "implant_measurements",
           "segment_distance_mm", "point_segment_distance_mm", "implant_surface_distance_mm"]

_WARN_MM = 5.0
#: Landmarks an implant is meant to reach or cross: shown, not coloured.
_INFO_KINDS = ("si_joint", "s1_endplate_posterior", "s2_anterior_body")
_MIN_MM = 2.0


@dataclass(frozen=True)
class Measurement:
    """One live distance of an implant.

    Attributes
    ----------
    implant : str
    target : str
        Landmark name, or ``"anterior cortex"``.
    kind : str
        Landmark kind, or ``"anterior_cortex"``.
    distance_mm : float or None
        Surface distance (negative: overlap); None when not measurable.
    status : {"ok", "warn", "bad", "none", "info"}
        ``"info"`` for landmarks the implant may touch (SI joint, endplate, body points).
    detail : str
    """

    implant: str
    target: str
    kind: str
    distance_mm: float | None
    status: str
    detail: str = ""


def distance_status(distance_mm: float | None, min_mm: float = _MIN_MM, warn_mm: float = _WARN_MM) -> str:
    """``"ok"``, ``"warn"``, ``"bad"`` (module doc) or ``"none"`` for a missing value."""
    if distance_mm is None:
        return "none"
    if distance_mm < min_mm:
        return "bad"
    return "warn" if distance_mm < warn_mm else "ok"


def _radius_at(imp: Implant, t: np.ndarray) -> np.ndarray:
    length = imp.length_mm
    taper = min(imp.item.tip_taper_mm, 0.5 * length)
    r = imp.item.circumradius_mm
    if taper <= 0:
        return np.full_like(t, r)
    return r * np.clip((length - t) / taper, 0.0, 1.0)


def anterior_cortex_distance_mm(ct, implant: Implant, anterior_lps=None, *, region_mm: float = 10.0,
                                max_mm: float = 60.0, step_mm: float = 0.5, cortex_hu: float = 150.0,
                                gap_mm: float = 15.0) -> tuple[float | None, np.ndarray | None]:
    """Distance from the apex region's envelope to the anterior sacral cortex (module doc).

    Parameters
    ----------
    ct : CTVolume
    implant : Implant
    anterior_lps : (3,) array_like, optional
        Patient anterior (default LPS ``-y``).
    region_mm : float
        Length of the apex region sampled (every 1 mm).
    max_mm, step_mm : float
        How far and how finely to march anteriorly.
    cortex_hu : float
        Cortical bone threshold.
    gap_mm : float
        Bone-free stretch that must follow the cortex.

    Returns
    -------
    distance_mm : float or None
        Minimum over the apex region; None when no cortex is found.
    cortex_lps_mm : (3,) float64 or None
        The nearest cortex point.
    """
    a = implant.axis_unit
    ant = np.array([0.0, -1.0, 0.0]) if anterior_lps is None else np.asarray(anterior_lps, dtype=np.float64)
    ant = ant - (ant @ a) * a
    if np.linalg.norm(ant) < 1e-6:
        return None, None
    ant /= np.linalg.norm(ant)
    length = implant.length_mm
    t = np.linspace(max(0.0, length - region_mm), length, max(2, int(round(region_mm)) + 1))
    base = implant.entry_lps_mm + t[:, None] * a                              # (T, 3)
    d = np.arange(0.0, max_mm + gap_mm + 1e-9, step_mm)                      # (D,)
    pts = base[:, None, :] + d[None, :, None] * ant                          # (T, D, 3)
    hu = ct.sample_hu(pts.reshape(-1, 3), outside=-1000.0).reshape(len(t), len(d))
    bone = hu >= cortex_hu
    n_gap = int(round(gap_mm / step_mm))
    radius = _radius_at(implant, t)
    best: tuple[float, np.ndarray] | None = None
    for k in range(len(t)):
        b = bone[k]
        # samples followed by n_gap bone-free samples
        ahead = np.lib.stride_tricks.sliding_window_view(np.concatenate([b[1:], np.zeros(n_gap, bool)]), n_gap)
        free_after = ~ahead.any(axis=1)
        cand = np.flatnonzero(b & free_after[:len(b)] & (d <= max_mm))
        if cand.size == 0:
            continue
        j = cand[0]
        dist = float(d[j] - radius[k])
        if best is None or dist < best[0]:
            best = (dist, pts[k, j].copy())
    if best is None:
        return None, None
    return best


def implant_measurements(plan: Plan, ct, implant_id: str, *, min_mm: float = _MIN_MM,
                         warn_mm: float = _WARN_MM) -> list[Measurement]:
    """The active implant's distances to every landmark and to the anterior cortex.

    Parameters
    ----------
    plan : Plan
    ct : CTVolume
    implant_id : str
    min_mm, warn_mm : float
        Colour thresholds (:func:`distance_status`).

    Returns
    -------
    list of Measurement
        The anterior cortex first, then the landmarks nearest first.
    """
    imp = plan.implant(implant_id)
    _, post, _ = patient_axes(plan.landmarks)
    d_ant, point = anterior_cortex_distance_mm(ct, imp, -post)
    out = [Measurement(imp.id, "anterior cortex", "anterior_cortex", d_ant, distance_status(d_ant, min_mm, warn_mm),
                       "no anterior cortex found within 60 mm of the apex region" if d_ant is None else
                       f"cortex at {np.round(point, 1).tolist()}")]
    rows = []
    for lm in plan.landmarks:
        dist = implant_surface_distance_mm(imp, lm.position_lps_mm) - lm.radius_mm
        status = "info" if lm.kind in _INFO_KINDS else distance_status(dist, min_mm, warn_mm)
        rows.append(Measurement(imp.id, lm.name, lm.kind, float(dist), status))
    return out + sorted(rows, key=lambda m: m.distance_mm)


def segment_distance_mm(p0, p1, q0, q1) -> float:
    """Shortest distance between segments ``p0-p1`` and ``q0-q1`` (3D, mm)."""
    p0, p1, q0, q1 = (np.asarray(v, dtype=np.float64) for v in (p0, p1, q0, q1))
    d1, d2, r = p1 - p0, q1 - q0, p0 - q0
    a, e, f = d1 @ d1, d2 @ d2, d2 @ r
    eps = 1e-12
    if a <= eps and e <= eps:
        return float(np.linalg.norm(r))
    if a <= eps:
        s, t = 0.0, float(np.clip(f / e, 0.0, 1.0))
    else:
        c = d1 @ r
        if e <= eps:
            s, t = float(np.clip(-c / a, 0.0, 1.0)), 0.0
        else:
            b = d1 @ d2
            denom = a * e - b * b
            s = float(np.clip((b * f - c * e) / denom, 0.0, 1.0)) if denom > eps else 0.0
            t = (b * s + f) / e
            if t < 0.0:
                s, t = float(np.clip(-c / a, 0.0, 1.0)), 0.0
            elif t > 1.0:
                s, t = float(np.clip((b - c) / a, 0.0, 1.0)), 1.0
    return float(np.linalg.norm((p0 + d1 * s) - (q0 + d2 * t)))


def point_segment_distance_mm(p, a, b) -> float:
    """Distance (mm) from point ``p`` to the segment ``a``-``b``."""
    ab = b - a
    s = float(np.clip((p - a) @ ab / (ab @ ab), 0.0, 1.0))
    return float(np.linalg.norm(p - (a + s * ab)))


def _seg2(p, a, b) -> float:
    ab = b - a
    s = float(np.clip((p - a) @ ab / (ab @ ab), 0.0, 1.0))
    return float(np.hypot(*(p - (a + s * ab))))


def implant_surface_distance_mm(imp: Implant, point) -> float:
    """Signed distance (mm, negative inside) from a point to the implant's envelope: the
    solid of revolution of its circumradius about the axis from the entry to the start
    of the tip, then a cone to the apex. It contains the triangular prism and its pyramid
    tip, so the distance is never larger than the distance to the real implant."""
    p = np.asarray(point, dtype=np.float64) - imp.entry_lps_mm
    length = imp.length_mm
    taper = min(imp.item.tip_taper_mm, 0.5 * length)
    r = imp.item.circumradius_mm
    u = float(p @ imp.axis_unit)                                  # meridian-plane coordinates
    q = np.array([u, float(np.linalg.norm(p - u * imp.axis_unit))])
    corners = [np.array(c, dtype=np.float64) for c in ((0.0, 0.0), (0.0, r), (length - taper, r), (length, 0.0))]
    d = min(_seg2(q, corners[k], corners[k + 1]) for k in range(3))
    tip_radius = r if u <= length - taper else r * (length - u) / taper if taper > 0 else 0.0
    inside = 0.0 <= u <= length and q[1] <= tip_radius
    return -d if inside else d
