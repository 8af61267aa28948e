"""Metal that the CT and the shot do not share: clutter in the beam, and metal in the CT only.

Real shots hold objects the planning CT does not (the table's rails, retractors, ECG and
warming cables), and a CT may hold metal the shot does not show (a hip prosthesis is
outside a tightly collimated field, or the CT is of another day). Both are built here
from the **body box**: the LPS bounding box of the voxels above -300 HU
(:func:`body_box_lps_mm`), so they land at plausible places in any CT.

* :class:`ExtraMetal` places one convex metal object by fractions of the body box:
  a ``"rail"`` or a ``"cable"`` is a round rod (12-sided prism) of diameter
  ``width_mm``; a ``"retractor"`` is a flat blade, ``width_mm`` x ``thickness_mm`` in
  cross-section. :func:`extra_metal_meshes` turns them into closed convex meshes for
  :func:`or_assist.render.implants.metal_line_integrals`.
* :func:`add_ct_metal` burns a hip prosthesis into a copy of the CT.

Examples
--------
>>> rail = ExtraMetal("rail", (0.4, 1.05, 0.5), (0, 0, 1), 400.0, 10.0)   # doctest: +SKIP
>>> meshes = extra_metal_meshes(ct, [rail])                                # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from or_assist.core.ct.volume import CTVolume
from or_assist.core.validate import check_choice, check_number, check_vector
from or_assist.errors import InputError

__all__ = ["EXTRA_METAL_KINDS", "ExtraMetal", "body_box_lps_mm", "prism_mesh", "extra_metal_meshes", "add_ct_metal"]

#: Kinds of :class:`ExtraMetal`.
EXTRA_METAL_KINDS = ("rail", "retractor", "cable")
_ROD_SIDES = 12
_BODY_HU = -300.0


@dataclass(frozen=True)
class ExtraMetal:
    """One metal object in the shot that the CT does not have.

    Attributes
    ----------
    kind : {"rail", "retractor", "cable"}
        Rails and cables are round rods, a retractor a flat blade.
    position_fraction : (3,) floats
        Centre of the object in the body box, per LPS axis 0 (low: right, anterior,
        inferior) to 1 (high); -1 to 2 reach outside it (a rail under the table top).
    axis_lps : (3,) floats
        Direction of the object's length (normalised here).
    length_mm : float
        Along ``axis_lps`` (1-1000).
    width_mm : float
        Rod diameter or blade width (0.2-100).
    thickness_mm : float
        Blade thickness (0.2-50; ignored for rods).
    roll_deg : float
        Turn of the blade about its axis (0: its width lies as close to LPS x as the
        axis allows).
    material : {"steel", "titanium", "aluminium"}
    """

    kind: str
    position_fraction: tuple[float, float, float]
    axis_lps: tuple[float, float, float]
    length_mm: float
    width_mm: float
    thickness_mm: float = 2.0
    roll_deg: float = 0.0
    material: str = "steel"

    def __post_init__(self):
        s = object.__setattr__
        check_choice(self.kind, EXTRA_METAL_KINDS, "kind")
        pos = check_vector(self.position_fraction, 3, "position_fraction")
        if np.any(pos < -1) or np.any(pos > 2):
            raise InputError(f"must be 3 numbers from -1 to 2, got {pos.tolist()}", "position_fraction")
        s(self, "position_fraction", tuple(float(x) for x in pos))
        axis = check_vector(self.axis_lps, 3, "axis_lps", nonzero=True)
        s(self, "axis_lps", tuple(float(x) for x in axis / np.linalg.norm(axis)))
        s(self, "length_mm", check_number(self.length_mm, "length_mm", 1.0, 1000.0, unit="mm"))
        s(self, "width_mm", check_number(self.width_mm, "width_mm", 0.2, 100.0, unit="mm"))
        s(self, "thickness_mm", check_number(self.thickness_mm, "thickness_mm", 0.2, 50.0, unit="mm"))
        s(self, "roll_deg", check_number(self.roll_deg, "roll_deg", -360.0, 360.0, unit="deg"))
        check_choice(self.material, ("steel", "titanium", "aluminium"), "material")


def body_box_lps_mm(ct: CTVolume) -> tuple[np.ndarray, np.ndarray]:
    """LPS bounding box (mm) of the CT's voxels above -300 HU (the whole CT if none).

    Returns
    -------
    lo, hi : (3,) float64 ndarrays
    """
    if not isinstance(ct, CTVolume):
        raise InputError(f"expected a CTVolume, got {type(ct).__name__}", "ct")
    k, j, i = np.nonzero(ct.hu > _BODY_HU)
    if k.size == 0:
        corners = ct.corners_lps_mm()
        return corners.min(axis=0), corners.max(axis=0)
    ijk = np.stack([[i.min(), j.min(), k.min()], [i.max(), j.max(), k.max()]]).astype(np.float64)
    corners = np.array([[ijk[a, 0], ijk[b, 1], ijk[c, 2]] for a in (0, 1) for b in (0, 1) for c in (0, 1)])
    lps = ct.origin_mm + (corners * ct.spacing_mm) @ ct.direction.T
    return lps.min(axis=0), lps.max(axis=0)


def _frame(axis: np.ndarray, roll_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors completing ``axis`` to a right-handed frame (e1 x e2 = axis)."""
    ref = np.array([1.0, 0.0, 0.0]) if abs(axis[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = ref - axis * (ref @ axis)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(axis, e1)
    a = math.radians(roll_deg)
    return math.cos(a) * e1 + math.sin(a) * e2, -math.sin(a) * e1 + math.cos(a) * e2


def prism_mesh(centre_mm, axis, section_mm: np.ndarray, length_mm: float, roll_deg: float = 0.0):
    """A closed convex prism mesh (outward, counter-clockwise faces).

    Parameters
    ----------
    centre_mm : (3,) LPS mm
    axis : (3,) unit vector
    section_mm : (n, 2) float
        Convex cross-section, counter-clockwise about ``axis``, mm.
    length_mm : float
    roll_deg : float

    Returns
    -------
    vertices : (2n + 2, 3) float64, LPS mm
    faces : (4n, 3) int64
    """
    axis = np.asarray(axis, dtype=np.float64)
    e1, e2 = _frame(axis, roll_deg)
    ring = section_mm[:, :1] * e1 + section_mm[:, 1:] * e2
    c, half = np.asarray(centre_mm, dtype=np.float64), 0.5 * length_mm * axis
    n = len(section_mm)
    verts = np.concatenate([c - half + ring, c + half + ring, [c - half, c + half]])
    faces = []
    for k in range(n):
        k1 = (k + 1) % n
        faces += [(k, k1, n + k1), (k, n + k1, n + k), (2 * n + 1, n + k, n + k1), (2 * n, k1, k)]
    return verts, np.array(faces, dtype=np.int64)


def extra_metal_meshes(ct: CTVolume, items) -> list[tuple[np.ndarray, np.ndarray]]:
    """Closed convex meshes (LPS mm) of :class:`ExtraMetal` objects placed in ``ct``'s body box.

    Parameters
    ----------
    ct : CTVolume
    items : sequence of ExtraMetal

    Returns
    -------
    list of (vertices (V, 3) float64 mm, faces (F, 3) int64)
        In the order of ``items``; usable with
        :func:`or_assist.render.implants.metal_line_integrals`.
    """
    if not isinstance(items, (list, tuple)) or not all(isinstance(x, ExtraMetal) for x in items):
        raise InputError("must be a sequence of ExtraMetal", "extra_metal")
    lo, hi = body_box_lps_mm(ct)
    out = []
    for it in items:
        centre = lo + np.asarray(it.position_fraction) * (hi - lo)
        if it.kind == "retractor":
            w, t = it.width_mm / 2, it.thickness_mm / 2
            section = np.array([[w, -t], [w, t], [-w, t], [-w, -t]])
        else:
            a = np.linspace(0.0, 2 * np.pi, _ROD_SIDES, endpoint=False)
            section = 0.5 * it.width_mm * np.column_stack([np.cos(a), np.sin(a)])
        out.append(prism_mesh(centre, np.asarray(it.axis_lps), section, it.length_mm, it.roll_deg))
    return out


def _segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    if not ab @ ab > 0:
        return np.linalg.norm(points - a, axis=1)
    t = np.clip(((points - a) @ ab) / (ab @ ab), 0.0, 1.0)
    return np.linalg.norm(points - (a + t[:, None] * ab), axis=1)


def add_ct_metal(ct: CTVolume, kind: str = "hip_prosthesis", side: str = "right", *,
                 metal_hu: float = 3071.0) -> CTVolume:
    """A copy of ``ct`` with a hip prosthesis burnt in (metal the shot will not show).

    The femoral head centre is estimated from the body box (:func:`body_box_lps_mm`,
    ``lo``/``hi``, width ``W`` = its LPS x extent): x at the box centre -/+ ``0.24 W``
    (right = towards -x), y at the middle of the box, z at ``lo_z + max(0.1 * height,
    25 mm)``: femoral heads sit about a quarter of the pelvic width either side of the
    midline, at mid-depth, near the bottom of an abdomen-pelvis scan. A heuristic: on a
    scan that stops above the hips the metal lands in the lower pelvis. The prosthesis:
    a 28 mm head (sphere), a neck (radius 7 mm, 45 mm long, 45 degrees lateral and
    down), a stem (radius 8 mm, 130 mm straight down), all at ``metal_hu``; voxels
    outside the CT are dropped.

    Parameters
    ----------
    ct : CTVolume
    kind : {"hip_prosthesis"}
    side : {"right", "left"}
        The patient's side.
    metal_hu : float
        HU of the metal (>= 2500; default 3071, the top of a 12-bit CT).

    Returns
    -------
    CTVolume
        A new volume; ``ct`` is unchanged.
    """
    check_choice(kind, ("hip_prosthesis",), "kind")
    check_choice(side, ("right", "left"), "side")
    metal_hu = check_number(metal_hu, "metal_hu", 2500.0, 30000.0, unit="HU")
    lo, hi = body_box_lps_mm(ct)
    sign = -1.0 if side == "right" else 1.0
    head = np.array([0.5 * (lo[0] + hi[0]) + sign * 0.24 * (hi[0] - lo[0]), 0.5 * (lo[1] + hi[1]),
                     lo[2] + max(0.1 * (hi[2] - lo[2]), 25.0)])
    neck_end = head + 45.0 * np.array([sign * math.sqrt(0.5), 0.0, -math.sqrt(0.5)])
    stem_end = neck_end + np.array([0.0, 0.0, -130.0])
    parts = [(head, head, 14.0), (head, neck_end, 7.0), (neck_end, stem_end, 8.0)]
    # voxels of the bounding box of the prosthesis only
    box_lo = np.minimum.reduce([head, neck_end, stem_end]) - 15.0
    box_hi = np.maximum.reduce([head, neck_end, stem_end]) + 15.0
    box = np.array([[x, y, z] for x in (box_lo[0], box_hi[0]) for y in (box_lo[1], box_hi[1])
                    for z in (box_lo[2], box_hi[2])])
    ijk = np.linalg.solve(ct.direction * ct.spacing_mm, (box - ct.origin_mm).T).T
    shape_xyz = np.array(ct.hu.shape[::-1])
    i_lo = np.clip(np.floor(ijk.min(axis=0)).astype(int), 0, shape_xyz - 1)
    i_hi = np.clip(np.ceil(ijk.max(axis=0)).astype(int), 0, shape_xyz - 1)
    hu = ct.hu.copy()
    kk, jj, ii = np.mgrid[i_lo[2]:i_hi[2] + 1, i_lo[1]:i_hi[1] + 1, i_lo[0]:i_hi[0] + 1]
    idx = np.stack([ii.ravel(), jj.ravel(), kk.ravel()], axis=1).astype(np.float64)
    lps = ct.origin_mm + (idx * ct.spacing_mm) @ ct.direction.T
    inside = np.zeros(len(lps), bool)
    for a, b, r in parts:
        inside |= _segment_distance(lps, a, b) <= r
    sel = idx[inside].astype(int)
    hu[sel[:, 2], sel[:, 1], sel[:, 0]] = np.float32(metal_hu)
    return CTVolume(hu, ct.origin_mm, ct.spacing_mm, ct.direction, source=ct.source, series_uid=ct.series_uid)
