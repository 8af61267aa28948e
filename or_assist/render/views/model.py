"""Types of the virtual view library: its entries, the library, and the nearest-view search.

See :mod:`or_assist.render.views.build` for what the library holds and how it is built, and
:mod:`or_assist.render.views.io` for its files.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from or_assist.core.carm import CArmAngles
from or_assist.core.geometry import CArmGeometry
from or_assist.core.pose import Pose
from or_assist.core.validate import is_finite_number, is_integer
from or_assist.core.vocabulary import IMPLANT_VIEW_KINDS
from or_assist.errors import InputError
from or_assist.render.display import DisplaySettings

__all__ = [
    "VIEW_LIBRARY_SCHEMA",
    "DEFAULT_SIZE_PX",
    "DEFAULT_NEIGHBOURHOOD_SIZE_PX",
    "DEFAULT_NEIGHBOURHOOD_DEG",
    "MAX_NEIGHBOURHOOD_OFFSET_DEG",
    "LIBRARY_VIEW_KINDS",
    "ViewEntry",
    "ViewLibrary",
    "ViewMatch",
    "downsample_for_size",
    "neighbourhood_offsets",
    "check_neighbourhood_deg",
    "nearest_views",
]

VIEW_LIBRARY_SCHEMA = "or_assist.view_library/1"
DEFAULT_SIZE_PX = 512                 # named views: largest image side
DEFAULT_NEIGHBOURHOOD_SIZE_PX = 128   # neighbourhood views: largest image side
DEFAULT_NEIGHBOURHOOD_DEG = (-10.0, -5.0, 0.0, 5.0, 10.0)
MAX_NEIGHBOURHOOD_OFFSET_DEG = 45.0
LIBRARY_VIEW_KINDS = IMPLANT_VIEW_KINDS  # every implant gets these


@dataclass(frozen=True, eq=False)
class ViewEntry:
    """One view of the library.

    Attributes
    ----------
    name : str
        Unique, e.g. ``"L1 inlet"``, or ``"L1 inlet [orbital +5, tilt -10]"`` for a
        neighbourhood view.
    implant_id, kind : str
        The implant the view centres on and the named view kind (``lateral``, ...).
    parent : str
        The named view's name (its own name for a named view).
    offset_deg : (float, float)
        ``(orbital, tilt)`` offset from the named view, degrees; ``(0, 0)`` for a named view.
    pose : Pose
        ``T_source_from_patient``.
    angles : CArmAngles
        Clinical angles of the pose (library's patient position and axes).
    isocenter_lps_mm : (3,) float64
        Point on the central ray at the geometry's source-to-isocentre distance.
    downsample : int
        Detector binning of the image (:meth:`CArmGeometry.downsampled`).
    outlines : tuple of ImplantOutline
        Every implant's projected outline in the image's pixels (named views only).
    """

    name: str
    implant_id: str
    kind: str
    parent: str
    offset_deg: tuple[float, float]
    pose: Pose
    angles: CArmAngles
    isocenter_lps_mm: np.ndarray
    downsample: int
    outlines: tuple = ()

    @property
    def is_named(self) -> bool:
        """True for a named view, False for a neighbourhood view."""
        return self.parent == self.name


@dataclass(eq=False)
class ViewLibrary:
    """A plan's virtual views (module doc); build with :func:`build_view_library`.

    Attributes
    ----------
    entries : list of ViewEntry
        Named views first (plan order), then each named view's neighbourhood.
    line_integrals : list of (H, W) float16 ndarray
        Per entry: CT plus metal line integrals (dimensionless), quantised to float16
        (relative error <= 2**-11), rows v, columns u.
    display : list of (H, W) uint8 ndarray
        Per entry: the display image (bone and metal dark).
    geometry : CArmGeometry
        The full-size C-arm geometry the library was built for.
    plan_sha256 : str
        :meth:`Plan.sha256` of the plan.
    plan_source : str or None
        The plan's file (informational).
    plan_implants : list of dict
        The plan's implants as written in the plan file (for messages on mismatch).
    renderer : dict
        ``energy_kev``, ``step_mm`` and ``neighbourhood_step_mm`` (DRR sampling),
        ``implants_shown``, ``metal``, ``metal_mu_per_mm`` (per implant id), ``downsample``
        and ``neighbourhood_downsample`` (detector binning), ``built_utc``.
    display_settings : DisplaySettings
    patient_position : {'prone', 'supine'}
    patient_axes : (3, 3) float64
        Rows: the patient's left, posterior and superior unit vectors used for angles.
    neighbourhood_deg : tuple of float
        The offsets of the neighbourhood grid (empty: none).
    or_assist_version : str
    """

    entries: list
    line_integrals: list
    display: list
    geometry: CArmGeometry
    plan_sha256: str
    plan_source: str | None
    plan_implants: list
    renderer: dict
    display_settings: DisplaySettings
    patient_position: str
    patient_axes: np.ndarray
    neighbourhood_deg: tuple
    or_assist_version: str

    def __len__(self) -> int:
        return len(self.entries)

    def named_entries(self) -> list[ViewEntry]:
        """The named views (no neighbourhood views)."""
        return [e for e in self.entries if e.is_named]

    def index(self, name: str) -> int:
        """Position of the entry called ``name``; an :class:`InputError` listing the named views if unknown."""
        for i, e in enumerate(self.entries):
            if e.name == name:
                return i
        raise InputError(f"no view {name!r} in the library; named views: "
                         f"{', '.join(e.name for e in self.named_entries())}", "name")

    def geometry_of(self, entry: int | ViewEntry) -> CArmGeometry:
        """The (binned) geometry of one entry's image, given its index or the entry."""
        e = self.entries[entry] if isinstance(entry, (int, np.integer)) else entry
        return self.geometry.downsampled(e.downsample) if e.downsample > 1 else self.geometry


@dataclass(frozen=True)
class ViewMatch:
    """A library view near a query pose (:func:`nearest_views`).

    Attributes
    ----------
    index : int
        Entry index in the library.
    name : str
    beam_angle_deg : float
        Angle between the query's and the entry's central rays.
    isocenter_distance_mm : float
        Distance from the entry's isocentre to the query's central ray.
    """

    index: int
    name: str
    beam_angle_deg: float
    isocenter_distance_mm: float


# --------------------------------------------------------------------------- settings


def downsample_for_size(geometry: CArmGeometry, size_px: int, name: str = "size_px") -> int:
    """The smallest integer binning whose image's larger side is at most ``size_px``.

    Parameters
    ----------
    geometry : CArmGeometry
    size_px : int
        Largest wanted image side in pixels (>= 16).
    name : str
        Names the argument in errors.
    """
    if not is_integer(size_px) or size_px < 16:
        raise InputError(f"must be an integer >= 16 (pixels), got {size_px!r}", name)
    return max(1, math.ceil(max(geometry.image_size_px) / int(size_px)))


def neighbourhood_offsets(neighbourhood_deg: Sequence[float] | None) -> list[tuple[float, float]]:
    """The ``(orbital, tilt)`` offsets of the neighbourhood grid, without ``(0, 0)``.

    Parameters
    ----------
    neighbourhood_deg : sequence of float or None
        Distinct offsets in degrees, each within +-45; the grid is their square.
        ``None`` or empty: no neighbourhood.

    Returns
    -------
    list of (float, float)
        Orbital-major order.
    """
    vals = check_neighbourhood_deg(neighbourhood_deg)
    return [(a, b) for a, b in itertools.product(vals, vals) if (a, b) != (0.0, 0.0)]


def check_neighbourhood_deg(neighbourhood_deg) -> tuple[float, ...]:
    """The neighbourhood offsets validated and sorted (see :func:`neighbourhood_offsets`)."""
    if neighbourhood_deg is None:
        return ()
    if isinstance(neighbourhood_deg, (str, bytes)) or not isinstance(neighbourhood_deg, (list, tuple, np.ndarray)):
        raise InputError(f"must be a list of angle offsets in degrees or None, got {neighbourhood_deg!r}",
                         "neighbourhood_deg")
    vals = []
    for v in neighbourhood_deg:
        if not is_finite_number(v) or abs(v) > MAX_NEIGHBOURHOOD_OFFSET_DEG:
            raise InputError(f"offsets must be finite numbers within +-{MAX_NEIGHBOURHOOD_OFFSET_DEG:g} deg, "
                             f"got {v!r}", "neighbourhood_deg")
        vals.append(float(v) + 0.0)  # + 0.0 turns -0.0 into 0.0
    if len(set(vals)) != len(vals):
        raise InputError(f"offsets must be distinct, got {list(neighbourhood_deg)}", "neighbourhood_deg")
    return tuple(sorted(vals))


# --------------------------------------------------------------------------- search


def nearest_views(library: ViewLibrary, pose: Pose, k: int = 1, *, named_only: bool = False,
                  implant_id: str | None = None) -> list[ViewMatch]:
    """The library views whose beams are closest to ``pose``'s (registration start).

    Views are ranked by the angle between central rays; views with the same beam (the
    laterals of different implants) by the distance of their isocentre from the query's
    central ray.

    Parameters
    ----------
    library : ViewLibrary
    pose : Pose
        ``T_source_from_patient`` of the query.
    k : int
        How many (>= 1; fewer when the library is smaller).
    named_only : bool
        Consider the named views only.
    implant_id : str, optional
        Consider only the views centred on this implant.

    Returns
    -------
    list of ViewMatch
        Best first.
    """
    if not isinstance(library, ViewLibrary):
        raise InputError(f"expected a ViewLibrary, got {type(library).__name__}", "library")
    if not isinstance(pose, Pose):
        raise InputError(f"expected a Pose (T_source_from_patient), got {type(pose).__name__}", "pose")
    if not is_integer(k) or k < 1:
        raise InputError(f"must be an integer >= 1, got {k!r}", "k")
    ids = {e.implant_id for e in library.entries}
    if implant_id is not None and implant_id not in ids:
        raise InputError(f"no views of implant {implant_id!r}; implants: {', '.join(sorted(ids))}", "implant_id")
    beam = pose.beam_direction_lps
    src = pose.source_position_lps_mm
    found = []
    for i, e in enumerate(library.entries):
        if (named_only and not e.is_named) or (implant_id is not None and e.implant_id != implant_id):
            continue
        angle = math.degrees(math.acos(max(-1.0, min(1.0, float(beam @ e.pose.beam_direction_lps)))))
        rel = e.isocenter_lps_mm - src
        dist = float(np.linalg.norm(rel - (rel @ beam) * beam))
        found.append(ViewMatch(i, e.name, angle, dist))
    found.sort(key=lambda m: (round(m.beam_angle_deg, 6), m.isocenter_distance_mm))
    return found[:int(k)]
