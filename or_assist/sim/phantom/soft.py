"""Soft tissues of the synthetic pelvis: body outline, fat, muscles, bowel, bladder, gas.

All positions are fixed (no randomness), in LPS mm, so the phantom is the same on
every call; only the texture noise in :mod:`or_assist.sim.phantom.make` is random (seeded).
"""

from __future__ import annotations

import numpy as np

from or_assist.sim.phantom.csg import Capsule, Ellipsoid, Func, Shape, ellipse_sdf_2d
from or_assist.sim.phantom.spine import sacral_curve

__all__ = [
    "BACK_Y_MM",
    "body_outline",
    "inner_body",
    "visceral_cavity",
    "muscles",
    "mesenteric_fat",
    "rectum",
    "gas_pockets",
    "bladder",
]

BACK_Y_MM = 84.0        # the back lies flat on the table here (supine)

# body cross-section per height z: half-width, anterior and posterior half-depth, centre y
_OUTLINE_Z = (-170.0, -120.0, -80.0, -30.0, 20.0, 100.0)
_OUTLINE_HALF_WIDTH = (172.0, 178.0, 176.0, 168.0, 160.0, 152.0)
_OUTLINE_ANT = (108.0, 112.0, 120.0, 128.0, 132.0, 134.0)
_OUTLINE_POST = (114.0, 114.0, 112.0, 110.0, 108.0, 104.0)
_OUTLINE_CY = (-18.0, -20.0, -22.0, -24.0, -26.0, -28.0)


def _outline_params(z):
    zf = np.asarray(z, np.float32).ravel()
    vals = [np.interp(zf, _OUTLINE_Z, t).astype(np.float32).reshape(np.shape(z))
            for t in (_OUTLINE_HALF_WIDTH, _OUTLINE_ANT, _OUTLINE_POST, _OUTLINE_CY)]
    return vals


def body_outline(inset_mm: float = 0.0) -> Shape:
    """The skin surface (an ellipse per slice, flattened at the back), moved in by ``inset_mm``."""
    def fn(x, y, z):
        a, b_ant, b_post, cy = _outline_params(z)
        dy = y - cy
        b = np.where(dy < 0, b_ant, b_post)
        d = ellipse_sdf_2d(x, dy, a, b)
        d = np.maximum(d, y - np.float32(BACK_Y_MM))
        return d + np.float32(inset_mm)
    return Func(fn, (-200.0, -200.0, -200.0), (200.0, 120.0, 200.0))


def inner_body(extra_mm: float = 0.0) -> Shape:
    """Inside the subcutaneous fat (thicker over the belly and hips), moved in by ``extra_mm``."""
    def fn(x, y, z):
        a, b_ant, b_post, cy = _outline_params(z)
        dy = y - cy
        b = np.where(dy < 0, b_ant, b_post)
        d = ellipse_sdf_2d(x, dy, a, b)
        d = np.maximum(d, y - np.float32(BACK_Y_MM))
        thick = np.where(dy < 0, np.float32(24.0), np.float32(15.0)) + np.float32(8.0) * (np.abs(x) / a) ** 2
        return d + thick + np.float32(extra_mm)
    return Func(fn, (-200.0, -200.0, -200.0), (200.0, 120.0, 200.0))


def visceral_cavity() -> list[Shape]:
    """The abdominal cavity above the pelvic brim and the true pelvis below it."""
    return [Ellipsoid((0.0, -78.0, 40.0), (118.0, 56.0, 95.0)),
            Ellipsoid((0.0, -50.0, -62.0), (52.0, 44.0, 42.0))]


def muscles(side_sign: float) -> list[Shape]:
    """Psoas and iliacus of one side (painted over the visceral fat)."""
    s = float(side_sign)
    return [
        Capsule((30.0 * s, -12.0, 100.0), (52.0 * s, -38.0, -20.0), 21.0, 17.0),
        Capsule((52.0 * s, -38.0, -20.0), (68.0 * s, -64.0, -92.0), 17.0, 13.0),
        Ellipsoid((96.0 * s, -40.0, 0.0), (20.0, 42.0, 34.0),
                  np.array([[0.8 * s, 0.6, 0.0], [-0.6 * s, 0.8, 0.0], [0.0, 0.0, 1.0]])),
    ]


def mesenteric_fat() -> list[Shape]:
    """Fat between the bowel loops (the cavity itself is painted as bowel)."""
    centres = [(-70.0, -95.0, 60.0), (-20.0, -80.0, 45.0), (35.0, -100.0, 75.0), (85.0, -85.0, 40.0),
               (-95.0, -70.0, 15.0), (-40.0, -115.0, 25.0), (10.0, -95.0, 5.0), (60.0, -110.0, 20.0),
               (-60.0, -90.0, -25.0), (-5.0, -120.0, -25.0), (45.0, -85.0, -25.0), (-25.0, -60.0, -60.0),
               (25.0, -45.0, -55.0), (80.0, -60.0, 70.0), (-100.0, -55.0, 70.0)]
    return [Ellipsoid(p, (13.0, 10.0, 12.0)) for p in centres]


def rectum() -> Shape:
    """The rectum in front of the lower sacrum."""
    c = sacral_curve()
    return Capsule(c.to_world(0.0, 40.0, 34.0), c.to_world(0.0, 105.0, 30.0), 13.0, 11.0)


def gas_pockets() -> list[Shape]:
    """Bowel gas: a few pockets in the anterior loops and a small one in the rectum."""
    c = sacral_curve()
    pockets = [Ellipsoid((-20.0, -114.0, 72.0), (9.0, 6.0, 8.0)),
               Ellipsoid((35.0, -106.0, 57.0), (7.0, 5.0, 7.0)),
               Ellipsoid((-45.0, -96.0, 16.0), (10.0, 6.0, 9.0)),
               Ellipsoid((60.0, -105.0, 12.0), (6.0, 4.5, 6.0)),
               Ellipsoid((-60.0, -110.0, -18.0), (8.0, 5.0, 7.0)),
               Ellipsoid((75.0, -64.0, 62.0), (6.0, 5.0, 6.0)),
               Ellipsoid(c.to_world(0.0, 70.0, 34.0), (6.0, 4.0, 7.0))]
    return pockets


def bladder() -> Shape:
    """The (partly filled) urinary bladder behind the pubic symphysis."""
    return Ellipsoid((0.0, -66.0, -88.0), (34.0, 24.0, 24.0))
