"""Catalogue snapping of a planned implant, and its side.

:func:`snap_length`: the entry-apex distance suggests the item of the chosen family
(diameter) with the nearest length; the apex then moves along the axis so that the
planned length equals the catalogue length (the ``length`` check of
:mod:`or_assist.planning.checks` passes by construction). A distance longer than the
family's longest item by more than half a step is clamped to the longest item, with a
message saying so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from or_assist.core.catalogue import Catalogue, CatalogueItem
from or_assist.core.validate import check_positive
from or_assist.errors import InputError

__all__ = ["SnapResult", "snap_length", "infer_side"]


@dataclass(frozen=True)
class SnapResult:
    """A catalogue-snapped implant length.

    Attributes
    ----------
    item : CatalogueItem
        The chosen item.
    apex_lps_mm : (3,) float64
        The apex moved along the axis so that ``|apex - entry| == item.length_mm``.
    requested_mm : float
        The entry-apex distance asked for.
    message : str
        Empty, or why the length was changed beyond snapping (clamped).
    """

    item: CatalogueItem
    apex_lps_mm: np.ndarray
    requested_mm: float
    message: str = ""


def snap_length(catalogue: Catalogue, family: str, entry_lps_mm, apex_lps_mm,
                length_mm: float | None = None) -> SnapResult:
    """The catalogue item for an axis and the apex moved to its length (module doc).

    Parameters
    ----------
    catalogue : Catalogue
    family : str
        Family prefix (diameter), e.g. ``"T7"``.
    entry_lps_mm, apex_lps_mm : (3,) array_like
        The axis (direction entry -> apex), LPS mm.
    length_mm : float, optional
        Wanted length; default ``|apex - entry|``.

    Returns
    -------
    SnapResult

    Raises
    ------
    InputError
        Unknown family, entry == apex, or a non-finite or non-positive length.
    """
    entry = np.asarray(entry_lps_mm, dtype=np.float64)
    apex = np.asarray(apex_lps_mm, dtype=np.float64)
    d = apex - entry
    dist = float(np.linalg.norm(d))
    if not dist > 1e-3:
        raise InputError("entry and apex are the same point: click the apex away from the entry", "implant")
    want = dist if length_mm is None else length_mm
    want = check_positive(want, "length_mm", "mm")
    items = catalogue.families.get(family)
    if items is None:
        raise InputError(f"unknown implant family {family!r}; valid: {', '.join(catalogue.families)}",
                         "family")
    longest, shortest = items[-1], items[0]
    step = (longest.length_mm - shortest.length_mm) / max(1, len(items) - 1) or 5.0
    message = ""
    if want > longest.length_mm + 0.5 * step:
        message = (f"{want:.1f} mm is longer than any {family} implant in the catalogue (longest "
                   f"{longest.id}, {longest.length_mm:g} mm): clamped to {longest.length_mm:g} mm")
    elif want < shortest.length_mm - 0.5 * step:
        message = (f"{want:.1f} mm is shorter than any {family} implant in the catalogue (shortest "
                   f"{shortest.id}, {shortest.length_mm:g} mm): lengthened to {shortest.length_mm:g} mm")
    item = catalogue.nearest_length(family, float(want))
    new_apex = entry + d / dist * item.length_mm
    return SnapResult(item, new_apex, float(want), message)


def infer_side(point_lps_mm, midline_x_mm: float) -> str:
    """``"left"`` when the point lies on the patient's left of the midline (LPS +x), else ``"right"``."""
    return "left" if float(np.asarray(point_lps_mm, dtype=np.float64)[0]) >= midline_x_mm else "right"
