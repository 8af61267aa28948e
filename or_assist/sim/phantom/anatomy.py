"""Analytic landmarks and clinically placed implant targets of the synthetic pelvis.

Everything is computed from the same implicit shapes that are voxelised, so a landmark
on a bone surface is on the surface of the voxels (to within the voxel size) and an
implant planned here passes the same checks on the CT.

Implants (per side, as in lateral-approach SIJF practice): the first in the S1 ala
above the S1 foramen and behind the alar line, the second caudal and posterior to it at
the level of the S1 foramen, the third in S2; each roughly perpendicular to the SI
joint, entering through the lateral iliac cortex and ending in the sacral lateral mass,
lateral to the foramina and the canal.
"""

from __future__ import annotations

import functools

import numpy as np

from or_assist.sim.phantom.build import shapes
from or_assist.sim.phantom.pelvis import JOINT_GAP_MM, si_joint
from or_assist.sim.phantom.spine import SACRUM, foramen_axis, sacral_canal, sacral_curve

__all__ = [
    "IMPLANT_CIRCUMRADIUS_MM",
    "IMPLANT_PLAN",
    "implant_targets",
    "landmarks",
    "surface_point",
    "closest_point_on_segment",
    "canal_distance_mm",
    "implant_clearance_mm",
    "MIN_CLEARANCE_MM",
    "MIN_SACRAL_PURCHASE_MM",
]

IMPLANT_INSCRIBED_DIAMETER_MM = 7.0
IMPLANT_CIRCUMRADIUS_MM = IMPLANT_INSCRIBED_DIAMETER_MM     # equilateral: R = 2 r
_CATALOGUE_LENGTHS_MM = tuple(range(30, 95, 5))

# Per implant: level and a point of its axis in sacral coordinates (x lateral, s along
# the sacrum, a anterior) for the left side. The axis runs from the lateral ilium
# medially, about perpendicular to the joint (slightly anterior and cranial); the entry
# is where it leaves the ilium, the length the catalogue length that keeps the apex in
# the sacrum, clear of foramina and canal, and far enough past the joint.
IMPLANT_PLAN = (
    ("S1", (30.0, -1.0, 1.0)),
    ("S1", (32.0, 17.0, -3.0)),
    ("S2", (40.0, 34.0, -11.0)),
)
_AXIS_WEIGHTS = np.array([1.0, 0.8, 0.5])   # scale of the joint normal's (x, y, z) for the axis


def _unit(v) -> np.ndarray:
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v)


def surface_point(shape, inside_mm, direction, max_mm: float = 80.0, step_mm: float = 0.25) -> np.ndarray:
    """First surface crossing of ``shape`` from ``inside_mm`` along ``direction`` (bisection)."""
    d = _unit(direction)
    p0 = np.asarray(inside_mm, np.float64)
    t = np.arange(0.0, max_mm, step_mm)
    vals = shape(p0 + t[:, None] * d)
    if vals[0] >= 0:
        raise ValueError("start point is not inside the shape")
    k = int(np.argmax(vals >= 0))
    lo, hi = t[k - 1], t[k]
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        if shape((p0 + mid * d)[None])[0] < 0:
            lo = mid
        else:
            hi = mid
    return p0 + 0.5 * (lo + hi) * d


def closest_point_on_segment(a, b, p0, p1, samples: int = 2001) -> tuple[np.ndarray, float]:
    """Point of segment ``a-b`` closest to segment ``p0-p1``, and the distance (mm)."""
    a, b, p0, p1 = (np.asarray(v, np.float64) for v in (a, b, p0, p1))
    pts = a + np.linspace(0.0, 1.0, samples)[:, None] * (b - a)
    v = p1 - p0
    h = np.clip((pts - p0) @ v / (v @ v), 0.0, 1.0)
    dist = np.linalg.norm(pts - (p0 + h[:, None] * v), axis=1)
    k = int(np.argmin(dist))
    return pts[k], float(dist[k])


MIN_CLEARANCE_MM = 3.5        # surface to surface, to foramina and canal (plans require 3)
MIN_SACRAL_PURCHASE_MM = 10.0  # implant length medial to the joint surface


def implant_clearance_mm(entry, apex, side_sign: float) -> float:
    """Smallest surface-to-surface distance (mm) between an implant (cylinder of the
    circumradius around entry-apex) and the sacral foramina channels and the canal."""
    entry, apex = np.asarray(entry, np.float64), np.asarray(apex, np.float64)
    best = np.inf
    for level in (1, 2, 3, 4):
        for dorsal in (False, True):
            inner, outer, radius = foramen_axis(level, side_sign, dorsal)
            _, dist = closest_point_on_segment(inner, outer, entry, apex, samples=401)
            best = min(best, dist - radius - IMPLANT_CIRCUMRADIUS_MM)
    axis_pts = entry + np.linspace(0.0, 1.0, 401)[:, None] * (apex - entry)
    best = min(best, float(canal_distance_mm(axis_pts).min()) - IMPLANT_CIRCUMRADIUS_MM)
    return float(best)


def _pick_length(entry, axis, length0: float, sign: float, joint) -> float:
    """The catalogue length nearest ``length0`` whose apex is in the sacrum, clear of the
    foramina and canal, and far enough past the joint."""
    sac = shapes()["sacrum"]
    pts = entry + np.linspace(0.0, 1.0, 801)[:, None] * (100.0 * axis)
    d, _, _ = joint.local(*(pts.astype(np.float32).T))
    t_joint = 100.0 * float(np.linspace(0.0, 1.0, 801)[int(np.argmax(d < 0))])
    for length in sorted(_CATALOGUE_LENGTHS_MM, key=lambda L: abs(L - length0)):
        apex = entry + length * axis
        if (sac(apex[None])[0] < -2.0 and length - t_joint >= MIN_SACRAL_PURCHASE_MM
                and implant_clearance_mm(entry, apex, sign) >= MIN_CLEARANCE_MM):
            return float(length)
    raise RuntimeError("no catalogue length fits the implant")  # pragma: no cover - design error


def _side_sign(side: str) -> float:
    return 1.0 if side == "left" else -1.0


@functools.lru_cache(maxsize=2)
def _targets(side: str) -> tuple:
    sign = _side_sign(side)
    c = sacral_curve()
    joint = si_joint(sign)
    ilium = shapes()[f"hip_{side}"]
    axis = _unit(-joint.normal * _AXIS_WEIGHTS)          # entry -> apex: medial
    out = []
    for k, (level, (x, s, a)) in enumerate(IMPLANT_PLAN, start=1):
        apex0 = c.to_world(sign * x, s, a)          # a point of the axis
        # walk out from the apex: the entry is where the axis leaves the first run of ilium
        t = np.arange(0.0, 140.0, 0.25)
        inside = ilium(apex0 - t[:, None] * axis) < 0
        if not inside.any():
            raise RuntimeError(f"implant {k}: axis does not meet the ilium")
        j0 = int(np.argmax(inside))
        j = j0 + int(np.argmax(~inside[j0:])) - 1
        lo, hi = t[j], t[j] + 0.25
        for _ in range(30):
            mid = 0.5 * (lo + hi)
            if ilium((apex0 - mid * axis)[None])[0] < 0:
                lo = mid
            else:
                hi = mid
        entry = apex0 - 0.5 * (lo + hi) * axis
        length0 = float(np.linalg.norm(apex0 - entry))
        length = _pick_length(entry, axis, length0, sign, joint)
        apex = entry + length * axis
        out.append({
            "id": f"{side[0].upper()}{k}",
            "side": side,
            "level": level,
            "entry_lps_mm": [round(float(v), 3) for v in entry],
            "apex_lps_mm": [round(float(v), 3) for v in apex],
            "length_mm": float(length),
            "inscribed_diameter_mm": IMPLANT_INSCRIBED_DIAMETER_MM,
        })
    return tuple(out)


def implant_targets(side: str) -> list[dict]:
    """The three implants of ``side`` ('left' or 'right'); see :mod:`or_assist.sim.phantom.make`."""
    return [dict(t, entry_lps_mm=list(t["entry_lps_mm"]), apex_lps_mm=list(t["apex_lps_mm"]))
            for t in _targets(side)]


def _lm(name, kind, side, pos, radius=0.0) -> dict:
    return {"name": name, "kind": kind, "side": side,
            "position_lps_mm": [round(float(v), 3) for v in pos], "radius_mm": round(float(radius), 3)}


def _alar_points(sign: float, sac) -> list[np.ndarray]:
    """Anterior-superior edge of the ala in the sagittal planes x = 30, 38, 46 mm."""
    c = sacral_curve()
    e = _unit(c.endplate_normal + c.m0)                 # between cranial and anterior
    out = []
    for x in (30.0, 38.0, 46.0):
        centre = c.to_world(sign * x, -4.0, 0.0)
        g = np.arange(-30.0, 30.0, 0.25)
        yy, zz = np.meshgrid(g, g, indexing="ij")
        pts = np.column_stack([np.full(yy.size, sign * x), centre[1] + yy.ravel(), centre[2] + zz.ravel()])
        inside = sac(pts) < 0
        score = np.where(inside, pts @ e, -np.inf)
        p = pts[int(np.argmax(score))]
        out.append(surface_point(sac, p - 1.0 * e, e, max_mm=5.0, step_mm=0.05))
    return out


@functools.lru_cache(maxsize=1)
def _landmarks() -> tuple:
    c = sacral_curve()
    sac = shapes()["sacrum"]
    out = []
    hh1 = SACRUM["body_half_height"][0]
    out.append(_lm("sacral_promontory", "sacral_promontory", "midline",
                   surface_point(sac, c.point(0.0), hh1 * c.endplate_normal + SACRUM["body_depth_ant"][0] * c.m0)))
    out.append(_lm("s1_endplate_posterior", "s1_endplate_posterior", "midline",
                   surface_point(sac, c.point(0.0), hh1 * c.endplate_normal - SACRUM["body_depth_post"][0] * c.m0)))
    out.append(_lm("s2_anterior_body", "s2_anterior_body", "midline",
                   surface_point(sac, c.point(SACRUM["body_s"][1]), c.anterior(SACRUM["body_s"][1]))))
    for level, s in (("S1", 0.0), ("S2", SACRUM["body_s"][1])):
        a = float(np.interp(s, SACRUM["canal_nodes_s"], SACRUM["canal_a"]))
        r = float(np.interp(s, SACRUM["canal_nodes_s"], SACRUM["canal_half_width"]))
        out.append(_lm(f"spinal_canal_{level}", "spinal_canal", "midline", c.to_world(0.0, s, a), r))
    for side in ("left", "right"):
        sign = _side_sign(side)
        targets = _targets(side)
        for level in (1, 2):
            inner, outer, radius = foramen_axis(level, sign)
            best = None
            for t in targets:
                if t["level"] != f"S{level}":
                    continue
                p, dist = closest_point_on_segment(inner, outer, t["entry_lps_mm"], t["apex_lps_mm"])
                if best is None or dist < best[1]:
                    best = (p, dist)
            out.append(_lm(f"s{level}_foramen_{side}", f"s{level}_foramen", side, best[0], radius))
        for k, p in enumerate(_alar_points(sign, sac), start=1):
            out.append(_lm(f"alar_line_{side}_{k}", "alar_line", side, p))
        joint = si_joint(sign)
        for name, (a, b) in (("s1", (-12.0, -8.0)), ("s1_s2", (4.0, -12.0)), ("s2", (22.0, -3.0))):
            t = -0.5 * joint.curvature * (a * a + b * b)
            p = joint.centre + a * joint.axis_a + b * joint.axis_b + t * joint.normal
            out.append(_lm(f"si_joint_{side}_{name}", "si_joint", side, p, 0.5 * JOINT_GAP_MM))
    return tuple(out)


def landmarks() -> list[dict]:
    """All landmarks (fresh dicts); see :func:`or_assist.sim.phantom.make.phantom_landmarks`."""
    return [dict(lm, position_lps_mm=list(lm["position_lps_mm"])) for lm in _landmarks()]


def canal_distance_mm(points_mm) -> np.ndarray:
    """Approximate signed distance (mm) of points to the sacral canal's wall (< 0 inside),
    everywhere (not limited to a bounding box)."""
    p = np.asarray(points_mm, np.float32).reshape(-1, 3)
    return sacral_canal().fn(p[:, 0], p[:, 1], p[:, 2])

