"""Instruments the app follows in the images: the guide pin.

A guide pin is a straight radiopaque wire, typically 3.2 mm in diameter
(``CONVENTIONS.md``; the packaged implant catalogue's ``guide_pin_diameter_mm``), made
of stainless steel. Its *tip* is the end inside the bone; its *back* end is the end
outside the patient (or any point on the wire behind the tip). All points are LPS mm in
the patient frame of the CT.

The mesh (:func:`guide_pin_mesh`) is a regular ``n``-sided prism from the back end to
the tip, closed by flat caps, optionally ending in a pyramid point (a trocar tip) of
axial length ``tip_cone_mm``. The polygon is sized to the circle's cross-section area
(circumradius ``r * sqrt(2 pi / (n sin(2 pi / n)))``), so projected line integrals and
volumes match the round wire (1.3 % larger circumradius at 16 facets).

Examples
--------
>>> pin = GuidePin.from_tip_direction([10.0, 0.0, 0.0], [-1.0, 0.0, 0.0], 150.0)
>>> pin.back_lps_mm.tolist(), pin.length_mm
([160.0, 0.0, 0.0], 150.0)
>>> v, f = guide_pin_mesh(pin)
>>> v.shape, f.shape
((32, 3), (60, 3))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from or_assist.core.validate import check_positive, check_vector, is_integer
from or_assist.errors import InputError

__all__ = ["DEFAULT_PIN_DIAMETER_MM", "DEFAULT_PIN_FACETS", "GuidePin", "guide_pin_mesh"]

#: Guide pin diameter, mm: the packaged catalogue's ``guide_pin_diameter_mm``.
DEFAULT_PIN_DIAMETER_MM = 3.2
#: Number of side facets of the pin mesh.
DEFAULT_PIN_FACETS = 16

_MIN_LENGTH_MM = 1e-3


def _point3(value, name: str) -> np.ndarray:
    p = check_vector(value, 3, name, unit="LPS mm")
    p.setflags(write=False)
    return p


@dataclass(frozen=True, eq=False)
class GuidePin:
    """A straight guide pin (K-wire).

    Attributes
    ----------
    tip_lps_mm : (3,) float64 ndarray, LPS mm
        The end inside the bone.
    back_lps_mm : (3,) float64 ndarray, LPS mm
        The other end (or the last point of the wire that matters).
    diameter_mm : float
        Wire diameter (default 3.2 mm).
    tip_cone_mm : float
        Axial length of the pointed tip (0 = flat end); at most the pin's length.
    id : str
        A name for overlays and logs.
    """

    tip_lps_mm: np.ndarray
    back_lps_mm: np.ndarray
    diameter_mm: float = DEFAULT_PIN_DIAMETER_MM
    tip_cone_mm: float = 0.0
    id: str = "pin"

    def __post_init__(self):
        tip = _point3(self.tip_lps_mm, "tip_lps_mm")
        back = _point3(self.back_lps_mm, "back_lps_mm")
        if np.linalg.norm(tip - back) < _MIN_LENGTH_MM:
            raise InputError(f"tip and back end are the same point {tip.tolist()}", "back_lps_mm")
        diameter = check_positive(self.diameter_mm, "diameter_mm", "mm")
        cone = check_positive(self.tip_cone_mm, "tip_cone_mm", "mm", allow_zero=True)
        if cone > np.linalg.norm(tip - back):
            raise InputError(f"must not exceed the pin length {np.linalg.norm(tip - back):.3g} mm, got {cone}",
                             "tip_cone_mm")
        if not isinstance(self.id, str):
            raise InputError(f"must be a string, got {self.id!r}", "id")
        object.__setattr__(self, "tip_lps_mm", tip)
        object.__setattr__(self, "back_lps_mm", back)
        object.__setattr__(self, "diameter_mm", diameter)
        object.__setattr__(self, "tip_cone_mm", cone)

    @classmethod
    def from_tip_direction(cls, tip_lps_mm: Sequence[float], direction_lps: Sequence[float],
                           length_mm: float, diameter_mm: float = DEFAULT_PIN_DIAMETER_MM,
                           tip_cone_mm: float = 0.0, id: str = "pin") -> "GuidePin":
        """A pin from its tip, its direction of advance (back end -> tip) and its length.

        Parameters
        ----------
        tip_lps_mm : (3,) array_like, LPS mm
        direction_lps : (3,) array_like
            Direction in which the pin points (from the back end towards the tip);
            any non-zero length.
        length_mm : float
            Visible length from the tip back, > 0.
        """
        d = check_vector(direction_lps, 3, "direction_lps", nonzero=True)
        length = check_positive(length_mm, "length_mm", "mm")
        tip = _point3(tip_lps_mm, "tip_lps_mm")
        return cls(tip, tip - length * d / np.linalg.norm(d), diameter_mm, tip_cone_mm, id)

    @property
    def axis_unit(self) -> np.ndarray:
        """(3,) float64 unit vector from the back end towards the tip."""
        d = self.tip_lps_mm - self.back_lps_mm
        return d / np.linalg.norm(d)

    @property
    def length_mm(self) -> float:
        """``|tip - back|`` in mm."""
        return float(np.linalg.norm(self.tip_lps_mm - self.back_lps_mm))

    @property
    def radius_mm(self) -> float:
        """Half the diameter, mm."""
        return 0.5 * self.diameter_mm

    def __repr__(self) -> str:
        return (f"GuidePin(id={self.id!r}, tip_lps_mm={np.round(self.tip_lps_mm, 2).tolist()}, "
                f"length_mm={self.length_mm:.1f}, diameter_mm={self.diameter_mm:g})")


def guide_pin_mesh(pin: GuidePin, n_facets: int = DEFAULT_PIN_FACETS) -> tuple[np.ndarray, np.ndarray]:
    """A closed convex triangle mesh of the pin (module doc).

    Parameters
    ----------
    pin : GuidePin
    n_facets : int
        Sides of the prism, >= 3.

    Returns
    -------
    vertices : (V, 3) float64 ndarray, LPS mm
        ``2 n`` ring vertices (back ring, then shoulder ring), plus the tip point when
        ``tip_cone_mm > 0``.
    faces : (F, 3) int32 ndarray
        Counter-clockwise seen from outside (normals point outwards).
    """
    if not isinstance(pin, GuidePin):
        raise InputError(f"expected a GuidePin, got {type(pin).__name__}", "pin")
    if not is_integer(n_facets) or n_facets < 3:
        raise InputError(f"must be an integer >= 3, got {n_facets!r}", "n_facets")
    n = int(n_facets)
    a = pin.axis_unit
    ref = np.array([0.0, 1.0, 0.0]) if abs(a[1]) <= 0.95 else np.array([0.0, 0.0, 1.0])
    u = ref - a * (ref @ a)
    u /= np.linalg.norm(u)
    v = np.cross(a, u)
    radius = pin.radius_mm * math.sqrt(2 * math.pi / (n * math.sin(2 * math.pi / n)))
    ang = 2 * math.pi * np.arange(n) / n
    ring = radius * (np.cos(ang)[:, None] * u + np.sin(ang)[:, None] * v)  # right-handed about a
    shoulder = pin.tip_lps_mm - pin.tip_cone_mm * a
    verts = [pin.back_lps_mm + ring, shoulder + ring]
    faces = [[0, k + 1, k] for k in range(1, n - 1)]                     # back cap, normal -a
    for k in range(n):
        k1 = (k + 1) % n
        faces += [[k, k1, n + k1], [k, n + k1, n + k]]                    # sides
    if pin.tip_cone_mm > 0:
        verts.append(pin.tip_lps_mm[None, :])
        faces += [[n + k, n + (k + 1) % n, 2 * n] for k in range(n)]      # pointed tip
    else:
        faces += [[n, n + k, n + k + 1] for k in range(1, n - 1)]         # flat tip cap, normal +a
    return np.vstack(verts), np.asarray(faces, dtype=np.int32)
