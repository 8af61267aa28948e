"""Sacrum, L5 and L4 of the synthetic pelvis, as implicit shapes (LPS mm).

The sacrum follows a circular sacral curve in the mid-sagittal plane through the centres
of its vertebral bodies: S1's centre is the origin, S1's cranial endplate faces anterior
and superior at the sacral slope, and the curve bends anteriorly towards the coccyx.
Positions on the sacrum are given in *sacral coordinates* ``(x, s, a)``: x (patient left),
arc length s along the curve (mm, caudal positive) and the offset a from the curve
towards the curve's centre (mm, anterior positive). Every landmark of the sacrum is
derived from the same parameters as the voxels.
"""

from __future__ import annotations

import math

import numpy as np

from or_assist.sim.phantom.csg import (Capsule, Ellipsoid, Func, RoundedCylinder, Shape, Subtract,
                                   Union, ellipse_sdf_2d, frame_from_axis)

__all__ = [
    "SACRAL_SLOPE_DEG",
    "SacralCurve",
    "SACRUM",
    "sacral_curve",
    "sacrum_raw",
    "sacral_canal",
    "sacral_foramina",
    "foramen_axis",
    "lumbar_vertebra",
    "lumbar_discs",
    "s1_endplate_centre",
    "LUMBAR",
]

SACRAL_SLOPE_DEG = 40.0
_CURVE_RADIUS_MM = 105.0

# Per level S1..S5 and the coccyx: body centre (arc length), half-height, half-width,
# anterior and posterior half-depth (mm).
SACRUM = {
    "body_s": (0.0, 28.0, 52.0, 72.0, 88.0, 101.0),
    "body_half_height": (15.5, 15.0, 13.0, 11.0, 9.0, 7.5),
    "body_half_width": (26.0, 21.0, 16.0, 12.0, 9.0, 6.0),
    "body_depth_ant": (17.0, 14.0, 11.0, 9.0, 7.0, 5.0),
    "body_depth_post": (14.0, 12.0, 9.0, 7.0, 6.0, 4.5),
    # anterior foramina S1..S4: arc length, radius, x of the anterior exit
    "foramen_s": (14.0, 40.0, 62.0, 80.0),
    "foramen_radius": (5.0, 4.5, 3.5, 3.0),
    "foramen_exit_x": (23.0, 18.0, 14.5, 12.0),
    "dorsal_foramen_radius": (4.0, 3.5, 3.0, 2.5),
    # canal: nodes along s of centre a, half-width and half-depth
    "canal_nodes_s": (-40.0, 0.0, 28.0, 52.0, 72.0, 92.0),
    "canal_a": (-24.0, -23.5, -20.0, -16.0, -13.5, -11.0),
    "canal_half_width": (12.0, 12.0, 10.0, 7.5, 6.0, 4.5),
    "canal_half_depth": (7.0, 7.0, 5.5, 4.5, 3.5, 3.0),
    # lateral masses (per side) and dorsal wall: cross-section ellipses in (x, a) per s node
    "mass_nodes_s": (-14.0, 0.0, 14.0, 28.0, 42.0, 56.0, 70.0, 84.0),
    "mass_x": (36.0, 36.0, 34.0, 31.0, 28.0, 24.0, 18.0, 12.0),
    "mass_half_width": (22.0, 23.0, 22.0, 20.0, 17.0, 14.0, 9.0, 5.0),
    "mass_a": (-9.0, -9.0, -10.0, -10.0, -10.0, -9.0, -7.0, -5.0),
    "mass_half_depth": (19.0, 21.0, 20.0, 18.0, 15.0, 12.0, 9.0, 6.0),
    "dorsal_a": (-27.0, -28.0, -27.0, -25.0, -22.0, -19.0, -16.0, -13.0),
    "dorsal_half_width": (28.0, 29.0, 28.0, 25.0, 21.0, 16.0, 11.0, 7.0),
    "dorsal_half_depth": (9.0, 10.0, 9.5, 9.0, 8.0, 7.0, 6.0, 5.0),
    "mass_top_s": -14.0,          # cranial surface of the ala (near the body)
    "mass_top_slope": 0.2,        # the ala's top drops laterally (mm of s per mm of x)
    "mass_bottom_s": 86.0,
    "dorsal_s": (-12.0, 76.0),    # dorsal wall: from S1 to the sacral hiatus
}


class SacralCurve:
    """The mid-sagittal circular arc through the sacral body centres.

    Parameters
    ----------
    slope_deg : float
        Sacral slope: angle between S1's cranial endplate and the axial plane.
    radius_mm : float
        Radius of curvature of the arc.
    """

    def __init__(self, slope_deg: float = SACRAL_SLOPE_DEG, radius_mm: float = _CURVE_RADIUS_MM):
        t = math.radians(slope_deg)
        self.radius = float(radius_mm)
        self.d0 = np.array([0.0, math.sin(t), -math.cos(t)])     # caudal tangent at S1
        self.m0 = np.array([0.0, -math.cos(t), -math.sin(t)])    # anterior normal at S1
        self.endplate_normal = -self.d0                           # faces anterior-superior
        self.centre = self.radius * self.m0                       # centre of curvature

    def point(self, s) -> np.ndarray:
        """Curve point(s) at arc length ``s`` (mm), shape (..., 3)."""
        phi = np.asarray(s, np.float64)[..., None] / self.radius
        return self.centre + self.radius * (-self.m0 * np.cos(phi) + self.d0 * np.sin(phi))

    def tangent(self, s) -> np.ndarray:
        """Unit caudal tangent at ``s``."""
        phi = np.asarray(s, np.float64)[..., None] / self.radius
        return self.m0 * np.sin(phi) + self.d0 * np.cos(phi)

    def anterior(self, s) -> np.ndarray:
        """Unit anterior normal at ``s`` (towards the centre of curvature)."""
        phi = np.asarray(s, np.float64)[..., None] / self.radius
        return self.m0 * np.cos(phi) - self.d0 * np.sin(phi)

    def to_world(self, x, s, a) -> np.ndarray:
        """LPS mm of sacral coordinates ``(x, s, a)``."""
        x = np.asarray(x, np.float64)
        p = self.point(s) + np.asarray(a, np.float64)[..., None] * self.anterior(s)
        return p + x[..., None] * np.array([1.0, 0.0, 0.0])

    def frame(self, s) -> np.ndarray:
        """Rows (lateral, anterior, cranial-axial) of a vertebral body frame at ``s``."""
        return np.vstack([[1.0, 0.0, 0.0], self.anterior(s), -self.tangent(s)])

    def coords(self, y, z):
        """Arc length s and anterior offset a of points (y, z) (broadcastable arrays)."""
        cy, cz = np.float32(self.centre[1]), np.float32(self.centre[2])
        dy, dz = y - cy, z - cz
        rho = np.sqrt(dy * dy + dz * dz)
        # angle from the S1 radius (-m0) towards the tangent d0
        e1, e2 = -self.m0.astype(np.float32), self.d0.astype(np.float32)
        phi = np.arctan2(dy * e2[1] + dz * e2[2], dy * e1[1] + dz * e1[2])
        return phi * np.float32(self.radius), np.float32(self.radius) - rho


_CURVE = SacralCurve()


def sacral_curve() -> SacralCurve:
    """The phantom's sacral curve."""
    return _CURVE


def _interp_nodes(s, key):
    return np.interp(s, SACRUM["canal_nodes_s"], SACRUM[key]).astype(np.float32)


def sacral_canal() -> Shape:
    """The sacral canal: an elliptic tube along the curve, open at the hiatus."""
    c = _CURVE
    s_lo, s_hi = SACRUM["canal_nodes_s"][0], SACRUM["canal_nodes_s"][-1]

    def fn(x, y, z):
        s, a = c.coords(y, z)
        s_flat = np.clip(s, s_lo, s_hi)
        ac = _interp_nodes(s_flat.ravel(), "canal_a").reshape(s.shape)
        wx = _interp_nodes(s_flat.ravel(), "canal_half_width").reshape(s.shape)
        wa = _interp_nodes(s_flat.ravel(), "canal_half_depth").reshape(s.shape)
        d2 = ellipse_sdf_2d(x, a - ac, wx, wa)
        return np.maximum(d2, np.maximum(s_lo - s, s - s_hi))

    pts = c.to_world(np.zeros(5), np.linspace(s_lo, s_hi, 5), np.full(5, -18.0))
    lo = pts.min(axis=0) - [16, 16, 16]
    hi = pts.max(axis=0) + [16, 16, 16]
    return Func(fn, lo, hi)


def foramen_axis(level: int, side_sign: float, dorsal: bool = False):
    """Inner and outer end (LPS mm) and radius of a sacral foramen channel.

    ``level`` 1..4 (S1..S4); ``side_sign`` +1 left, -1 right. The anterior channel runs
    from the canal's lateral recess to the anterior surface; the dorsal one to the back.
    """
    k = level - 1
    s = SACRUM["foramen_s"][k]
    a_canal = float(np.interp(s, SACRUM["canal_nodes_s"], SACRUM["canal_a"]))
    w_canal = float(np.interp(s, SACRUM["canal_nodes_s"], SACRUM["canal_half_width"]))
    inner = _CURVE.to_world(side_sign * (w_canal - 1.0), s, a_canal)
    depth = float(np.interp(s, SACRUM["body_s"], SACRUM["body_depth_ant"]))
    if dorsal:
        outer = _CURVE.to_world(side_sign * (SACRUM["foramen_exit_x"][k] - 3.0), s, a_canal - 22.0)
        return inner, outer, SACRUM["dorsal_foramen_radius"][k]
    outer = _CURVE.to_world(side_sign * SACRUM["foramen_exit_x"][k], s, depth + 6.0)
    return inner, outer, SACRUM["foramen_radius"][k]


def sacral_foramina(dorsal: bool = True) -> list[Shape]:
    """Foramen channels S1..S4 on both sides (anterior, and dorsal when ``dorsal``)."""
    out = []
    for level in (1, 2, 3, 4):
        for sign in (1.0, -1.0):
            kinds = (False, True) if dorsal else (False,)
            for d in kinds:
                a, b, r = foramen_axis(level, sign, d)
                out.append(Capsule(a, b, r))
    return out


def _extrude(d2, s, s_lo, s_hi, r: float):
    """Extrude a 2D distance along s between ``s_lo`` and ``s_hi`` with edges rounded by r."""
    q1 = d2 + np.float32(r)
    q2 = np.maximum(s_lo - s, s - s_hi) + np.float32(r)
    outside = np.sqrt(np.maximum(q1, 0.0) ** 2 + np.maximum(q2, 0.0) ** 2)
    return outside + np.minimum(np.maximum(q1, q2), 0.0) - np.float32(r)


def _smin(a, b, k):
    h = np.maximum(k - np.abs(a - b), 0.0) / k
    return np.minimum(a, b) - h * h * np.float32(k * 0.25)


def _sacral_masses() -> Shape:
    """Both lateral masses (alae at S1) and the dorsal wall, as one shape along the curve."""
    c = _CURVE
    S = SACRUM
    nodes = S["mass_nodes_s"]

    def prm(s, key):
        return np.interp(s.ravel(), nodes, S[key]).astype(np.float32).reshape(s.shape)

    def fn(x, y, z):
        s, a = c.coords(y, z)
        ax = np.abs(x)
        d_mass = ellipse_sdf_2d(ax - prm(s, "mass_x"), a - prm(s, "mass_a"),
                                prm(s, "mass_half_width"), prm(s, "mass_half_depth"))
        top = np.float32(S["mass_top_s"]) + np.float32(S["mass_top_slope"]) * np.maximum(ax - 22.0, 0.0)
        d_mass = _extrude(d_mass, s, top, np.float32(S["mass_bottom_s"]), 7.0)
        d_dorsal = ellipse_sdf_2d(x, a - prm(s, "dorsal_a"), prm(s, "dorsal_half_width"),
                                  prm(s, "dorsal_half_depth"))
        d_dorsal = _extrude(d_dorsal, s, np.float32(S["dorsal_s"][0]), np.float32(S["dorsal_s"][1]), 4.0)
        return _smin(d_mass, d_dorsal, 6.0)

    pts = c.to_world(np.array([0.0, 0.0, 0.0]), np.array([-20.0, 40.0, 90.0]), np.array([-15.0, -15.0, -15.0]))
    lo = np.minimum(pts.min(axis=0), 0) - [70.0, 45.0, 45.0]
    hi = pts.max(axis=0) + [70.0, 45.0, 45.0]
    return Func(fn, lo, hi)


def sacrum_raw() -> Shape:
    """The sacrum before the SI-joint clip and the canal/foramina cuts."""
    c = _CURVE
    S = SACRUM
    parts = []
    for k, s in enumerate(S["body_s"]):
        parts.append(RoundedCylinder(c.point(s), c.frame(s), S["body_half_width"][k],
                                     S["body_depth_ant"][k], S["body_depth_post"][k],
                                     S["body_half_height"][k], rounding=3.5))
    parts.append(_sacral_masses())
    # the median crest and S1's superior articular processes
    parts.append(Capsule(c.to_world(0.0, -6.0, -38.0), c.to_world(0.0, 64.0, -27.0), 5.0, 3.5))
    for sign in (1.0, -1.0):
        parts.append(Ellipsoid(c.to_world(sign * 19.0, -17.0, -27.0), (8.0, 11.0, 8.0), c.frame(-17.0)[[0, 2, 1]]))
    return Union(parts, k=5.0)


# --------------------------------------------------------------------------- lumbar spine

# L5 and L4: axial tilt from vertical (deg, towards anterior), half-height, and the disc
# below (posterior height, mm); centres follow from stacking them on S1.
LUMBAR = {
    "L5": {"tilt_deg": 28.0, "half_height": 13.5, "disc_posterior_mm": 8.0},
    "L4": {"tilt_deg": 16.0, "half_height": 13.0, "disc_posterior_mm": 9.0},
}
_LUMBAR_DEPTH_POST = 14.0


def _stack_lumbar() -> None:
    c = _CURVE
    # posterior-superior corner of the body below, and its axial direction
    corner = s1_endplate_centre() - SACRUM["body_depth_post"][0] * c.m0
    axial_below = c.endplate_normal
    for name in ("L5", "L4"):
        p = LUMBAR[name]
        rows = _lumbar_frame(p["tilt_deg"])
        axis = rows[2] + axial_below
        axis /= np.linalg.norm(axis)
        low_corner = corner + p["disc_posterior_mm"] * axis
        centre = low_corner + p["half_height"] * rows[2] + _LUMBAR_DEPTH_POST * rows[1]
        p["centre"] = tuple(float(v) for v in centre)
        corner = centre + p["half_height"] * rows[2] - _LUMBAR_DEPTH_POST * rows[1]
        axial_below = rows[2]


def s1_endplate_centre() -> np.ndarray:
    """Centre of S1's cranial endplate (LPS mm)."""
    return _CURVE.point(0.0) + SACRUM["body_half_height"][0] * _CURVE.endplate_normal


def _lumbar_frame(tilt_deg: float) -> np.ndarray:
    t = math.radians(tilt_deg)
    axial = np.array([0.0, -math.sin(t), math.cos(t)])
    anterior = np.array([0.0, -math.cos(t), -math.sin(t)])
    return np.vstack([[1.0, 0.0, 0.0], anterior, axial])


_stack_lumbar()


def lumbar_vertebra(name: str) -> tuple[Shape, Shape]:
    """A lumbar vertebra (body and neural arch) and its canal, as ``(bone, canal)``."""
    p = LUMBAR[name]
    rows = _lumbar_frame(p["tilt_deg"])
    centre = np.asarray(p["centre"], np.float64)
    hh = p["half_height"]

    def at(u, v, w):
        return centre + u * rows[0] + v * rows[1] + w * rows[2]

    body = RoundedCylinder(centre, rows, 25.0, 18.0, _LUMBAR_DEPTH_POST, hh, rounding=3.5)
    parts = [body]
    for sign in (1.0, -1.0):
        parts += [
            Capsule(at(sign * 14.0, -11.0, 3.0), at(sign * 15.0, -28.0, 2.0), 6.0, 5.5),       # pedicle
            Capsule(at(sign * 15.0, -30.0, 1.0), at(0.0, -38.0, -3.0), 5.5, 5.0),             # lamina
            Capsule(at(sign * 15.0, -24.0, 3.0), at(sign * 47.0, -22.0, 5.0), 7.0, 5.0),     # transverse process
            Ellipsoid(at(sign * 18.0, -32.0, 15.0), (6.0, 7.0, 9.0), rows),                   # superior articular
            Ellipsoid(at(sign * 17.0, -35.0, -13.0), (6.0, 7.0, 9.0), rows),                  # inferior articular
        ]
    parts.append(Capsule(at(0.0, -37.0, -2.0), at(0.0, -62.0, -9.0), 6.0, 5.0))              # spinous process
    bone = Union(parts, k=4.0)
    canal = Capsule(at(0.0, -25.0, hh + 14.0), at(0.0, -25.0, -hh - 14.0), 10.5)
    return Subtract(bone, [canal]), canal


def lumbar_discs() -> list[Shape]:
    """The L4-L5 and L5-S1 discs (overlapping the bones; bones are painted over them)."""
    s1_top = s1_endplate_centre()
    out = []
    for lower, upper in ((None, "L5"), ("L5", "L4")):
        up = LUMBAR[upper]
        rows_u = _lumbar_frame(up["tilt_deg"])
        if lower is None:
            top_of_lower = s1_top
        else:
            low = LUMBAR[lower]
            top_of_lower = np.asarray(low["centre"]) + low["half_height"] * _lumbar_frame(low["tilt_deg"])[2]
        bottom_of_upper = np.asarray(up["centre"]) - up["half_height"] * rows_u[2]
        centre = 0.5 * (top_of_lower + bottom_of_upper)
        axis = bottom_of_upper - top_of_lower
        rows = frame_from_axis(axis, (1.0, 0.0, 0.0))
        if rows[1][1] > 0:           # second row anterior (-y)
            rows[1] = -rows[1]
        out.append(RoundedCylinder(centre, rows, 24.0, 17.0, 13.0, 0.5 * np.linalg.norm(axis) + 3.0, rounding=3.0))
    return out
