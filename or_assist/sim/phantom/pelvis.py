"""Hip bones, femora and sacroiliac joints of the synthetic pelvis (LPS mm).

Every shape is built for the patient's left side (x > 0) and mirrored with
``side_sign = -1`` for the right. The hip bone (ilium, ischium and pubis as one bone, as
in the adult) is an iliac wing plate (:class:`~or_assist.sim.phantom.csg.Plate`) blended with
tubes and ellipsoids for the crest, the sciatic buttress, the acetabulum, the ischium
and the pubic rami.

The SI joint is a gently curved surface between the sacrum's lateral masses and the
posterior ilium: the sacrum is cut to its medial side and the ilium to its lateral side,
leaving a gap of ``JOINT_GAP_MM`` in the ear-shaped (auricular) articular region and a
wider, ligament-filled gap around it.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from or_assist.sim.phantom.csg import (Capsule, Ellipsoid, Func, HalfSpace, Intersect, Offset, Plate,
                                   Shape, Subtract, Union)
from or_assist.sim.phantom.spine import sacral_curve

__all__ = [
    "JOINT_GAP_MM",
    "LIGAMENT_GAP_MM",
    "HIP_CENTRE_MM",
    "FEMORAL_HEAD_RADIUS_MM",
    "SIJoint",
    "si_joint",
    "hip_bone",
    "femur",
    "hip_joint_space",
    "ILIUM_POINTS",
]

JOINT_GAP_MM = 2.5           # articular (auricular) part of the SI joint
LIGAMENT_GAP_MM = 4.0        # interosseous-ligament part around it
HIP_CENTRE_MM = (84.0, -35.0, -100.0)
FEMORAL_HEAD_RADIUS_MM = 23.5
_SOCKET_RADIUS_MM = 26.0

# Outline of the left iliac wing (LPS mm), from the ASIS over the crest to the PSIS and
# back along the sciatic notch and the acetabular roof.
ILIUM_POINTS = {
    "asis": (118.0, -84.0, -28.0),
    "crest": ((129.0, -63.0, 2.0), (136.0, -36.0, 28.0), (130.0, -6.0, 41.0), (111.0, 22.0, 42.0),
              (84.0, 43.0, 33.0), (61.0, 56.0, 15.0)),
    "psis": (44.0, 62.0, -12.0),
    "piis": (49.0, 50.0, -38.0),
    "lower": ((56.0, 34.0, -50.0), (57.0, 6.0, -36.0), (61.0, -22.0, -52.0), (65.0, -48.0, -74.0),
              (72.0, -62.0, -84.0)),
    "aiis": (107.0, -73.0, -56.0),
    "anterior_notch": (111.0, -76.0, -42.0),
}


def _unit(v) -> np.ndarray:
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v)


class SIJoint:
    """The left (``side_sign`` +1) or right (-1) sacroiliac joint surface.

    Coordinates: ``d`` signed distance from the joint surface (mm, lateral positive),
    ``a`` along the sacrum (caudal positive), ``b`` in the joint plane (posterior
    positive), all from the joint centre ``centre``.
    """

    def __init__(self, side_sign: float):
        self.sign = float(side_sign)
        c = sacral_curve()
        self.centre = np.array([46.0 * side_sign, 14.0, -17.0])
        yaw = math.radians(22.0)      # anterior part more lateral
        conv = math.radians(8.0)      # joints converge caudally
        ja = c.tangent(22.0)
        lateral = np.array([math.cos(yaw) * side_sign, math.sin(yaw), 0.0])
        n = _unit(math.cos(conv) * lateral + math.sin(conv) * ja)
        b = _unit(np.cross(n, ja))
        if b[1] < 0:
            b = -b
        a = _unit(np.cross(b, n))
        if a[2] > 0:
            a = -a
        self.normal, self.axis_a, self.axis_b = n, a, b
        self.curvature = 0.004        # 1/mm: surface bulges laterally towards its rim

    def local(self, x, y, z):
        """``(d, a, b)`` of points (broadcastable float32 arrays)."""
        dx = x - np.float32(self.centre[0])
        dy = y - np.float32(self.centre[1])
        dz = z - np.float32(self.centre[2])
        n, ea, eb = (v.astype(np.float32) for v in (self.normal, self.axis_a, self.axis_b))
        a = dx * ea[0] + dy * ea[1] + dz * ea[2]
        b = dx * eb[0] + dy * eb[1] + dz * eb[2]
        d = dx * n[0] + dy * n[1] + dz * n[2] + np.float32(self.curvature) * (a * a + b * b) * 0.5
        return d, a, b

    @staticmethod
    def auricular_sdf(a, b):
        """2D signed distance to the ear-shaped articular region (mm, < 0 inside)."""
        corner = (6.0, -10.0)
        arms = (((-26.0, 5.0), 12.0), ((36.0, 12.0), 12.0))
        out = None
        for (ea, eb), r in arms:
            pa, pb = a - np.float32(corner[0]), b - np.float32(corner[1])
            va, vb = ea - corner[0], eb - corner[1]
            h = np.clip((pa * va + pb * vb) / np.float32(va * va + vb * vb), 0.0, 1.0)
            d = np.sqrt((pa - va * h) ** 2 + (pb - vb * h) ** 2) - np.float32(r)
            out = d if out is None else np.minimum(out, d)
        return out

    @classmethod
    def zone_sdf(cls, a, b):
        """2D signed distance to the contact zone: the articular ear (grown by 2 mm) and the
        interosseous-ligament area in its concavity, posterior and cranial to it (mm)."""
        ea, eb = a - np.float32(0.0), b - np.float32(12.0)
        lig = (np.sqrt((ea / 24.0) ** 2 + (eb / 13.0) ** 2) - 1.0) * np.float32(13.0)
        return np.minimum(cls.auricular_sdf(a, b) - np.float32(2.0), lig)

    def gap(self, a, b):
        """Joint width (mm) at in-plane coordinates: articular inside the ear, wider around it."""
        t = np.clip(self.auricular_sdf(a, b) / np.float32(3.0) + 0.5, 0.0, 1.0)
        return np.float32(JOINT_GAP_MM) + np.float32(LIGAMENT_GAP_MM - JOINT_GAP_MM) * t

    def sacral_clip(self) -> Shape:
        """Sacrum side: medial of the surface minus half the gap (everywhere)."""
        def fn(x, y, z):
            d, a, b = self.local(x, y, z)
            return d + 0.5 * self.gap(a, b)
        return Func(fn, np.full(3, -1e5), np.full(3, 1e5))

    def iliac_clip(self) -> Shape:
        """Ilium side: lateral of the surface plus half the gap, inside the contact zone."""
        def fn(x, y, z):
            d, a, b = self.local(x, y, z)
            release = np.maximum(self.zone_sdf(a, b), 0.0) * np.float32(8.0)
            return -(d - 0.5 * self.gap(a, b)) - release
        return Func(fn, np.full(3, -1e5), np.full(3, 1e5))

    def filler(self, d_lo: float, d_hi: float) -> Shape:
        """Bone between ``d_lo`` and ``d_hi`` from the surface over the contact zone, so that
        both bones reach the joint everywhere in it (cut afterwards by the clips)."""
        mid, half = 0.5 * (d_lo + d_hi), 0.5 * (d_hi - d_lo)

        def fn(x, y, z):
            d, a, b = self.local(x, y, z)
            return np.maximum(np.abs(d - np.float32(mid)) - np.float32(half), self.zone_sdf(a, b))
        r = 70.0
        return Func(fn, self.centre - r, self.centre + r)

    def gap_slab(self) -> Shape:
        """The joint space (both bones' surfaces removed): |d| < gap/2 within the zone."""
        def fn(x, y, z):
            d, a, b = self.local(x, y, z)
            return np.maximum(np.abs(d) - 0.5 * self.gap(a, b), self.zone_sdf(a, b))
        r = 60.0
        return Func(fn, self.centre - r, self.centre + r)

    def is_articular(self, points_mm) -> np.ndarray:
        """True where points (N, 3) project into the ear-shaped articular region."""
        p = np.asarray(points_mm, np.float32).reshape(-1, 3)
        _, a, b = self.local(p[:, 0], p[:, 1], p[:, 2])
        return self.auricular_sdf(a, b) < 0


_JOINTS = {1.0: SIJoint(1.0), -1.0: SIJoint(-1.0)}


def si_joint(side_sign: float) -> SIJoint:
    """The joint of the left (+1) or right (-1) side."""
    return _JOINTS[float(side_sign)]


def _mirror(p, sign):
    p = np.asarray(p, np.float64)
    return np.array([p[0] * sign, p[1], p[2]])


def _wing_plate(sign: float) -> Plate:
    P = ILIUM_POINTS
    ring = [P["asis"], *P["crest"], P["psis"], P["piis"], *P["lower"], P["aiis"], P["anterior_notch"]]
    pts = np.array([_mirror(p, sign) for p in ring])
    origin = pts.mean(axis=0)
    _, _, vt = np.linalg.svd(pts - origin)
    n = vt[2] * (1.0 if vt[2][0] * sign > 0 else -1.0)
    u = _mirror(P["psis"], sign) - _mirror(P["asis"], sign)
    u = _unit(u - (u @ n) * n)
    v = np.cross(n, u)
    if v[2] < 0:
        v = -v
    rows = np.vstack([u, v, n])
    loc = (pts - origin) @ rows.T
    # mid-surface: quadratic fit of w over (u, v)
    U, V, W = loc[:, 0], loc[:, 1], loc[:, 2]
    A = np.column_stack([np.ones_like(U), U, V, U * U, U * V, V * V])
    coef, *_ = np.linalg.lstsq(A, W, rcond=None)
    step = 1.0
    margin = 20.0
    uv0 = np.array([U.min() - margin, V.min() - margin])
    nu = int(math.ceil((U.max() - U.min() + 2 * margin) / step)) + 1
    nv = int(math.ceil((V.max() - V.min() + 2 * margin) / step)) + 1
    gu, gv = np.meshgrid(uv0[0] + step * np.arange(nu), uv0[1] + step * np.arange(nv))
    mid = coef[0] + coef[1] * gu + coef[2] * gv + coef[3] * gu * gu + coef[4] * gu * gv + coef[5] * gv * gv
    poly = np.round((loc[:, :2] - uv0) / step * 4).astype(np.int32)       # 2 bits sub-pixel
    mask = np.zeros((nv, nu), np.uint8)
    cv2.fillPoly(mask, [poly.reshape(-1, 1, 2)], 1, lineType=cv2.LINE_8, shift=2)
    inside = cv2.distanceTransform(mask, cv2.DIST_L2, 5)
    outside = cv2.distanceTransform(1 - mask, cv2.DIST_L2, 5)
    outline = (outside - inside) * step
    outline = cv2.GaussianBlur(outline.astype(np.float32), (0, 0), 3.0)
    depth = np.maximum(-outline, 0.0)
    # thin iliac fossa, thick rims, thicker towards the posterior ilium and the acetabulum
    post = np.clip((gu - (U.max() - 70.0)) / 45.0, 0.0, 1.0)
    low = np.clip(((V.min() + 45.0) - gv) / 40.0, 0.0, 1.0)
    half = 1.6 + 4.6 * np.exp(-depth / 7.0) + 6.0 * post * post * (3 - 2 * post) + 5.0 * low
    # bowl: the fossa is concave medially, the gluteal surface convex laterally
    mid = mid + 6.0 * (1.0 - np.exp(-depth / 18.0))
    return Plate(origin, rows, uv0, step, mid.astype(np.float32), half.astype(np.float32), outline)


def hip_bone(side_sign: float, sacrum_clipped: Shape) -> tuple[Shape, Shape]:
    """The hip bone of one side, clipped at the SI joint, as ``(bone, unclipped bone)``.

    ``sacrum_clipped`` (the sacrum cut at both joints) keeps the ilium at least
    ``JOINT_GAP_MM`` away from the sacrum outside the contact zone too.
    """
    s = float(side_sign)
    m = lambda p: _mirror(p, s)  # noqa: E731
    joint = si_joint(s)
    H = m(HIP_CENTRE_MM)
    inc, antev = math.radians(45.0), math.radians(20.0)
    n_open = np.array([math.sin(inc) * math.cos(antev) * s, -math.sin(inc) * math.sin(antev), -math.cos(inc)])
    crest = [m(ILIUM_POINTS["asis"])] + [m(p) for p in ILIUM_POINTS["crest"]] + [m(ILIUM_POINTS["psis"])]
    parts: list[Shape] = [_wing_plate(s)]
    radii = [5.5, 6.5, 7.0, 7.0, 7.0, 7.5, 8.0, 8.0]
    for i in range(len(crest) - 1):
        parts.append(Capsule(crest[i], crest[i + 1], radii[i], radii[i + 1]))
    parts += [
        # posterior ilium (auricular part and iliac tuberosity), reaching the gluteal surface
        joint.filler(-3.0, 12.0),
        Ellipsoid(joint.centre + 13.0 * joint.normal + 6.0 * joint.axis_b, (17.0, 34.0, 28.0),
                  np.vstack([joint.normal, joint.axis_a, joint.axis_b])),
        Ellipsoid(m((52.0, 50.0, 2.0)), (11.0, 12.0, 22.0)),
        # body of the ilium above the acetabulum (pelvic brim to gluteal surface)
        Ellipsoid(m((82.0, -22.0, -54.0)), (45.0, 16.0, 28.0),
                  np.array([[-0.53 * s, 0.85, 0.0], [0.85 * s, 0.53, 0.0], [0.0, 0.0, 1.0]])),
        # posterior column: sciatic buttress down to the acetabulum and ischium
        Capsule(m((64.0, 8.0, -50.0)), m((77.0, -16.0, -98.0)), 11.0, 14.0),
        # anterior column: ASIS - AIIS - acetabulum
        Capsule(m(ILIUM_POINTS["asis"]), m(ILIUM_POINTS["aiis"]), 6.0, 8.0),
        Capsule(m(ILIUM_POINTS["aiis"]), m((92.0, -56.0, -80.0)), 8.0, 10.0),
        # acetabular cup
        Intersect([Ellipsoid(H, (36.0, 36.0, 36.0)), HalfSpace(H + 9.0 * n_open, n_open)]),
        # ischium, tuberosity and spine
        Capsule(m((78.0, -12.0, -106.0)), m((65.0, -5.0, -144.0)), 15.0, 13.0),
        Ellipsoid(m((63.0, -4.0, -148.0)), (12.0, 17.0, 13.0)),
        Capsule(m((70.0, 0.0, -97.0)), m((54.0, 30.0, -108.0)), 6.5, 3.0),
        # pubis: superior ramus, body, inferior ramus
        Capsule(m((76.0, -58.0, -92.0)), m((20.0, -88.0, -104.0)), 11.0, 9.0),
        Ellipsoid(m((12.5, -88.0, -112.0)), (9.0, 10.0, 19.0)),
        Capsule(m((14.0, -82.0, -128.0)), m((58.0, -20.0, -150.0)), 7.5, 9.5),
    ]
    raw = Subtract(Union(parts, k=6.0), [Ellipsoid(H, (_SOCKET_RADIUS_MM,) * 3)])
    bone = Subtract(Intersect([raw, joint.iliac_clip()]), [Offset(sacrum_clipped, JOINT_GAP_MM)])
    return bone, raw


def femur(side_sign: float) -> Shape:
    """The proximal femur: head, neck, trochanters and the upper shaft."""
    s = float(side_sign)
    m = lambda p: _mirror(p, s)  # noqa: E731
    H = m(HIP_CENTRE_MM)
    neck_dir = _unit((math.cos(math.radians(38)) * math.cos(math.radians(12)) * s,
                      math.cos(math.radians(38)) * math.sin(math.radians(12)), -math.sin(math.radians(38))))
    parts = [
        Ellipsoid(H, (FEMORAL_HEAD_RADIUS_MM,) * 3),
        Capsule(H + 8.0 * neck_dir, H + 52.0 * neck_dir, 14.5, 17.0),
        Ellipsoid(m((130.0, -22.0, -118.0)), (13.0, 19.0, 24.0)),
        Capsule(m((126.0, -26.0, -128.0)), m((114.0, -22.0, -260.0)), 16.0, 14.0),
        Ellipsoid(m((108.0, -12.0, -150.0)), (9.0, 9.0, 12.0)),
    ]
    return Union(parts, k=6.0)


def hip_joint_space(side_sign: float) -> Shape:
    """The hip joint's cartilage and space around the femoral head."""
    return Ellipsoid(_mirror(HIP_CENTRE_MM, side_sign), (_SOCKET_RADIUS_MM,) * 3)
