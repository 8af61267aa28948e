"""Metal objects that hold more than one implant, and implants broken into pieces.

Faint metal (a cannulated implant at 2000-2500 HU, a fenestrated or porous-coated one)
needs a low threshold and grouping through still lower voxels
(:func:`or_assist.postop.segment.find_metal_objects`); two implants a few millimetres
apart then join into one object while the rest of one of them may stay a separate
piece. :func:`split_touching` splits every object too wide for one implant along the
planned implants near it (k-lines clustering, :func:`or_assist.postop.segment.split_object`),
keeps the implants that own a plausible share of it (a fifth of the implant's volume),
and merges the parts with the collinear pieces of the same implant again.
"""

from __future__ import annotations

import numpy as np

from or_assist.core.catalogue import CatalogueItem
from or_assist.core.ct.volume import CTVolume
from or_assist.postop.segment import MetalObject, _merge_collinear, split_object

__all__ = ["single_width_mm", "item_volume_mm3", "split_touching"]

#: An object wider than this times one implant's width holds more than one implant.
_WIDE_FACTOR = 1.5
#: A planned implant keeps a part of a split object only if the part has at least this
#: share of the implant's volume (else its voxels go to the other implants).
_MIN_PART_SHARE = 0.2


def single_width_mm(item: CatalogueItem) -> float:
    """``4 sigma`` of a triangle's cross-section (sigma^2 = r_in^2 / 2), without blooming, mm."""
    return 2.0 * np.sqrt(2.0) * item.inscribed_radius_mm


def item_volume_mm3(item: CatalogueItem) -> float:
    """Volume of the solid triangular prism of the item (triangle area ``3 sqrt(3) r_in^2`` times length), mm3."""
    return 3.0 * np.sqrt(3.0) * float(item.inscribed_radius_mm) ** 2 * float(item.length_mm)


def _line_distance_mm(points: np.ndarray, point: np.ndarray, direction: np.ndarray) -> np.ndarray:
    d = points - point
    u = direction / np.linalg.norm(direction)
    return np.linalg.norm(d - np.outer(d @ u, u), axis=1)


def split_touching(ct: CTVolume, objects: list[MetalObject], planned: dict, claim_mm: dict, *,
                   metal_hu: float) -> tuple[list[MetalObject], list[str]]:
    """Split objects holding several implants; merge the parts with their implants' pieces.

    Parameters
    ----------
    ct : CTVolume
        The CT the objects were segmented in.
    objects : list of MetalObject
        Metal near the plan.
    planned : dict of str to (entry (3,), apex (3,), CatalogueItem)
        The planned implants in the CT's frame, by id.
    claim_mm : dict of str to float
        Per planned implant, the largest distance (mm) from its apex to an object's
        nearest voxel for the object to be considered as holding it (the match reach).
    metal_hu : float
        The metal threshold (object weights).

    Returns
    -------
    objects : list of MetalObject
        The objects after splitting and merging.
    notes : list of str
        One per split object: which implants it held.
    """
    out, notes, split_any = [], [], False
    for obj in objects:
        near = [pid for pid, (_, apex, _) in planned.items()
                if float(np.min(np.linalg.norm(obj.points_lps_mm - apex, axis=1))) <= claim_mm[pid]]
        widest = max((single_width_mm(planned[p][2]) for p in near), default=np.inf)
        if len(near) < 2 or obj.width_mm <= _WIDE_FACTOR * widest:
            out.append(obj)
            continue
        keep = _owners(ct, obj, near, planned, metal_hu)
        if len(keep) < 2:
            out.append(obj)
            continue
        parts = split_object(ct, obj, [_line(planned[p]) for p in keep], metal_hu=metal_hu)
        notes.append(f"one metal object held implants {', '.join(keep)} (touching at this resolution); "
                     f"split into {len(parts)}")
        out += parts
        split_any = True
    if split_any:
        out = _merge_collinear(ct, out, float(np.prod(ct.spacing_mm)), metal_hu)
    return sorted(out, key=lambda o: -o.volume_mm3), notes


def _line(entry_apex_item) -> tuple[np.ndarray, np.ndarray]:
    entry, apex, _ = entry_apex_item
    return 0.5 * (entry + apex), apex - entry


def _owners(ct: CTVolume, obj: MetalObject, near: list[str], planned: dict, metal_hu: float) -> list[str]:
    """The planned implants that own a plausible part of the object (k-lines split over all near ones)."""
    parts = split_object(ct, obj, [_line(planned[p]) for p in near], metal_hu=metal_hu)
    keep = []
    for part in parts:
        pid = min(near, key=lambda p: float(np.mean(_line_distance_mm(part.points_lps_mm, *_line(planned[p])))))
        if part.volume_mm3 >= _MIN_PART_SHARE * item_volume_mm3(planned[pid][2]) and pid not in keep:
            keep.append(pid)
    return [p for p in near if p in keep]
