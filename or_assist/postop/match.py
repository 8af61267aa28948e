"""Find the planned implants among the metal of a registered post-op CT.

Used by :func:`or_assist.postop.evaluate.evaluate_case` (steps 2-4 of its module doc):
the implants are the metal the pre-op lacks (:func:`or_assist.postop.added.regroup_added_metal`:
post-op minus the registered pre-op, so a faint hollow implant is one object); metal objects are classified as far (ignored), matched to a planned implant (one to one,
``scipy.optimize.linear_sum_assignment`` on the planned apex's distance to the metal), or extra;
each match is fitted (principal axis and centroid, then the triangular-prism fit, as a
solid implant and as one cannulated for the catalogue's guide pin, the smaller residual
kept; the fit also takes up a coating's growth). Objects too wide for one implant are
split along the planned implants near them first (:func:`or_assist.postop.pieces.split_touching`).
Everything here is in the post-op frame; the planned implants are mapped into it with
the registration.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
from scipy.optimize import linear_sum_assignment

from or_assist.core.catalogue import CatalogueItem
from or_assist.core.ct.volume import CTVolume
from or_assist.core.pose import Pose
from or_assist.core.plan import Plan, implant_vertex_directions
from or_assist.errors import InputError
from or_assist.postop.added import ADDED_HU, regroup_added_metal
from or_assist.postop.prism_fit import fit_prism, roll_about_axis_rad
from or_assist.postop.metal import fill_metal_channels, metal_threshold_hu
from or_assist.postop.pieces import item_volume_mm3, split_touching
from or_assist.postop.segment import MetalObject, candidate_items, find_metal_objects, fit_implant

__all__ = ["FoundImplant", "LocatedImplants", "locate_implants"]

#: A prism fit that moves the start by more than this is rejected (the start is kept).
_MAX_FIT_SHIFT_MM, _MAX_FIT_TURN_DEG = 6.0, 8.0
#: Beyond the limits above, a fit is kept only when the fits started independently from the
#: same start (solid and channelled) agree within these (both found the same implant: the
#: principal axis of a faint, partly segmented implant can be 8-10 deg off) and it moved less than the caps.
_AGREE_MM, _AGREE_DEG = 1.0, 1.0
_CAP_FIT_SHIFT_MM, _CAP_FIT_TURN_DEG = 12.0, 15.0
#: Model evaluations of the second (channel) fit, started from the solid fit's result.
_SECOND_FIT_ITERATIONS = 12


@dataclass
class FoundImplant:
    """An implant found in the post-op CT (post-op frame, LPS mm)."""

    apex_lps_mm: np.ndarray
    entry_lps_mm: np.ndarray
    item: CatalogueItem
    extent_mm: float
    fit: dict
    note: str = ""


@dataclass
class LocatedImplants:
    """Result of :func:`locate_implants`.

    Attributes
    ----------
    matches : dict of str to FoundImplant
        By planned implant id.
    extra : list of (FoundImplant, str, float)
        Unmatched metal near the plan, the nearest planned implant's id and the distance
        from the metal to that implant's planned axis (mm).
    ignored : list of (MetalObject, float)
        Metal farther than ``far_mm`` from every planned implant, with that distance.
    warnings : list of str
    """

    matches: dict = field(default_factory=dict)
    extra: list = field(default_factory=list)
    ignored: list = field(default_factory=list)
    warnings: list = field(default_factory=list)


def _points_segment_min_mm(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Smallest distance (mm) from a point set (N, 3) to the segment a-b."""
    ab = b - a
    s = np.clip((points - a) @ ab / max(float(ab @ ab), 1e-12), 0.0, 1.0)
    return float(np.min(np.linalg.norm(points - (a + s[:, None] * ab), axis=1)))


def _pair_within(cost_mm: np.ndarray, max_mm: float) -> dict[int, int]:
    """Planned implant (row) -> metal object (column) pairs, each at most ``max_mm`` apart.

    ``scipy.optimize.linear_sum_assignment`` on the cost with pairs over ``max_mm`` made
    prohibitive: the most pairs possible within ``max_mm``, then the smallest total
    distance. It replaced our greedy nearest-first pairing (issue 18), which gave the same
    pairs on every benchmark case but can leave an implant unmatched when its only
    candidate is taken by a neighbour that had another one within reach.
    """
    cost_mm = np.asarray(cost_mm, dtype=np.float64)
    if cost_mm.size == 0:
        return {}
    ok = cost_mm <= max_mm
    rows, cols = linear_sum_assignment(np.where(ok, cost_mm, 1e9))
    return {int(i): int(j) for i, j in zip(rows, cols) if ok[i, j]}


def _turn_deg(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip(a @ b, -1.0, 1.0))))


def _held(fit, start, shift_mm: float = _MAX_FIT_SHIFT_MM, turn_deg: float = _MAX_FIT_TURN_DEG) -> bool:
    """Did the prism fit stay near its start (not run off to another minimum)?"""
    return bool(np.isfinite(fit.rms_hu) and np.linalg.norm(fit.apex_lps_mm - start.apex_lps_mm) <= shift_mm
                and _turn_deg(fit.axis_unit, start.axis_unit) <= turn_deg)


def _agreeing(fits: list, start) -> list[int]:
    """Fits beyond the usual limits that independent fits confirm (indices), else [].

    Used only when every fit was started from ``start`` (none held): two fits of
    different models that end at the same pose within the caps found one implant.
    """
    ok = [k for k, f in enumerate(fits) if _held(f, start, _CAP_FIT_SHIFT_MM, _CAP_FIT_TURN_DEG)]
    for i in ok:
        for j in ok:
            if i < j and np.linalg.norm(fits[i].apex_lps_mm - fits[j].apex_lps_mm) <= _AGREE_MM \
                    and _turn_deg(fits[i].axis_unit, fits[j].axis_unit) <= _AGREE_DEG:
                return [i, j]
    return []


def _prism_refine(postop: CTVolume, preop: CTVolume, T_preop_from_postop: Pose, obj: MetalObject,
                  others: list[MetalObject], start, roll0: float,
                  channels_mm=(0.0,)) -> tuple[np.ndarray, np.ndarray, dict, str]:
    """Triangular-prism fit of one implant; falls back to the start when the fit runs off.

    One fit per channel diameter in ``channels_mm`` (0: solid) on the same voxels; the
    one with the smallest residual is kept (a cannulated implant's hollow core, where the
    grid resolves it, fits the channel model better; where it does not, both agree).
    """
    from or_assist.postop.register_check import pose_to_sitk

    n = np.array(postop.shape_xyz)
    idx = postop.lps_to_index(obj.points_lps_mm)
    lo = np.maximum(np.floor(idx.min(axis=0)).astype(int) - 2, 0)
    hi = np.minimum(np.ceil(idx.max(axis=0)).astype(int) + 2, n - 1)
    sub = np.s_[lo[2]:hi[2] + 1, lo[1]:hi[1] + 1, lo[0]:hi[0] + 1]
    box = CTVolume(postop.hu[sub], postop.index_to_lps(lo.astype(np.float64)), postop.spacing_mm,
                   postop.direction)
    pre = sitk.GetArrayFromImage(sitk.Resample(preop.to_sitk(), box.to_sitk(), pose_to_sitk(T_preop_from_postop),
                                               sitk.sitkLinear, -1000.0, sitk.sitkFloat32))
    other = np.zeros(box.hu.shape, dtype=np.uint8)
    for o in others:
        k = np.round(box.lps_to_index(o.points_lps_mm)).astype(int)
        k = k[np.all((k >= 0) & (k < np.array(box.shape_xyz)), axis=1)]
        other[k[:, 2], k[:, 1], k[:, 0]] = 1
    use = sitk.GetArrayFromImage(sitk.BinaryDilate(sitk.GetImageFromArray(other), [1, 1, 1])) == 0
    hu_max = float(box.hu.max())
    # sub-voxel points at most 0.6 mm apart per axis (5 on 3 mm voxels, 2 on 0.8 mm ones): thin-slice scans fit fast
    sub = tuple(int(np.clip(np.ceil(s / 0.6), 1, 5)) for s in box.spacing_mm)
    # metal start: far above the scale where the metal is clipped (a plateau at the maximum),
    # else a little above the brightest voxel (dim metal: a start at 8000 HU can run off)
    clipped = np.count_nonzero(box.hu >= hu_max - 1.0) >= 3
    metal0 = 8000.0 if clipped else 1.25 * hu_max
    fits = []
    for ch in channels_mm:        # the first from the start, the others from the first's result if it held
        f0 = fits[0] if fits and _held(fits[0], start) else None
        if f0 is None:
            fits.append(fit_prism(box, pre, use, start.item, start.apex_lps_mm, start.axis_unit, hu_max=hu_max,
                                  roll0_rad=roll0, metal0_hu=metal0, channel_mm=float(ch), fit_grow=True,
                                  supersample=sub))
            continue
        fits.append(fit_prism(box, pre, use, start.item, f0.apex_lps_mm, f0.axis_unit, hu_max=hu_max,
                              roll0_rad=float(np.radians(f0.roll_deg)), metal0_hu=f0.metal_hu,
                              blur0_var_vox=(f0.blur_mm / float(np.min(box.spacing_mm))) ** 2,
                              channel_mm=float(ch), iterations=_SECOND_FIT_ITERATIONS, fit_grow=True,
                              grow0_mm=f0.grow_mm, supersample=sub))
    held = [k for k, f in enumerate(fits) if _held(f, start)]
    confirmed = [] if held else _agreeing(fits, start)
    k = min(held or confirmed, key=lambda j: fits[j].rms_hu) if held or confirmed else 0
    fit, channel = fits[k], float(channels_mm[k])
    shift = float(np.linalg.norm(fit.apex_lps_mm - start.apex_lps_mm))
    turn = _turn_deg(fit.axis_unit, start.axis_unit)
    info = {"extent_mm": round(obj.extent_mm, 2), "width_mm": round(obj.width_mm, 2)}
    if not held and not confirmed:
        return start.apex_lps_mm, start.entry_lps_mm, dict(info, method="principal axis"), \
            f"prism fit rejected (moved {shift:.1f} mm, {turn:.1f} deg); principal axis kept"
    return fit.apex_lps_mm, fit.entry_lps_mm, dict(info, method="prism fit", rms_hu=round(fit.rms_hu, 1),
                                                   metal_hu=round(fit.metal_hu), blur_mm=round(fit.blur_mm, 2),
                                                   channel_mm=channel), \
        ("" if held else f"prism fit {turn:.1f} deg / {shift:.1f} mm from the metal's principal axis, "
                         "confirmed by two independent fits")


def locate_implants(plan: Plan, postop: CTVolume, preop: CTVolume, T_preop_from_postop: Pose, *,
                    metal_hu: float | None = None, max_match_mm: float = 20.0, far_mm: float = 40.0,
                    refine: bool = True, channel_mm: float = 3.5,
                    cannulation_mm: float | None = None, added_hu: float | None = ADDED_HU) -> LocatedImplants:
    """Segment, classify, match and fit the implants of a registered post-op CT.

    Parameters
    ----------
    plan : Plan
    postop : CTVolume
        The post-op CT (HU).
    preop : CTVolume
        The pre-op CT (or a crop covering the plan), for the tissue behind the metal.
    T_preop_from_postop : Pose
        The registration.
    metal_hu : float or None
        Metal threshold (HU); None: from the scan's histogram and the catalogue
        (:func:`or_assist.postop.metal.metal_threshold_hu`, on the channel-filled CT).
    max_match_mm, far_mm : float
        See :func:`or_assist.postop.evaluate.evaluate_case`.
    channel_mm : float
        Central channels (cannulated implants) and holes up to this width are filled
        before the metal is segmented and measured
        (:func:`or_assist.postop.metal.fill_metal_channels`); 0: off.
    refine : bool
        Run the triangular-prism fit (else principal axis and centroid only).
    cannulation_mm : float or None
        Diameter of the implants' central channel for the prism fit, mm; 0: solid; None
        (default): unknown, both a solid implant and one cannulated for the catalogue's
        guide pin (``plan.catalogue.guide_pin_diameter_mm``) are fitted and the smaller
        residual decides (``fit["channel_mm"]`` says which).
    added_hu : float or None
        The implants are taken from the metal the pre-op lacks (post-op minus the
        registered pre-op) down to this many HU added
        (:func:`or_assist.postop.added.regroup_added_metal`: a faint, fenestrated or
        cannulated implant is then one object, not the pieces over the threshold);
        None: the threshold objects only.

    Returns
    -------
    LocatedImplants
    """
    if cannulation_mm is not None and (not np.isfinite(cannulation_mm) or cannulation_mm < 0):
        raise InputError(f"must be None (unknown), 0 (solid) or a channel diameter in mm, got {cannulation_mm!r}",
                         "cannulation_mm")
    channels = (0.0, float(plan.catalogue.guide_pin_diameter_mm)) if cannulation_mm is None else (cannulation_mm,)
    out = LocatedImplants()
    T_post_from_pre = T_preop_from_postop.inverse()
    planned = {i.id: (T_post_from_pre.apply(i.entry_lps_mm), T_post_from_pre.apply(i.apex_lps_mm), i)
               for i in plan.implants}

    def nearest_planned(obj: MetalObject) -> tuple[str, float]:
        return min(((pid, _points_segment_min_mm(obj.points_lps_mm, e, a)) for pid, (e, a, _) in planned.items()),
                   key=lambda x: x[1])

    filled = fill_metal_channels(postop, channel_mm)
    if metal_hu is None:
        metal_hu = metal_threshold_hu(filled, plan.catalogue)
    objects = find_metal_objects(filled, metal_hu=metal_hu)
    if added_hu is not None:
        objects = regroup_added_metal(filled, preop, T_preop_from_postop, objects, metal_hu=metal_hu,
                                      smallest=min((i.item for i in plan.implants), key=item_volume_mm3),
                                      level_hu=added_hu)
    near = []
    for obj in objects:
        pid, dist = nearest_planned(obj)
        if dist > far_mm:
            out.ignored.append((obj, dist))
        else:
            near.append(obj)

    def cost(pid: str, obj: MetalObject) -> float:       # planned apex to the object's nearest metal voxel
        return float(np.min(np.linalg.norm(obj.points_lps_mm - planned[pid][1], axis=1)))

    # split objects too wide for one implant along the planned implants near them
    objects, notes = split_touching(filled, near, {p: (e, a, i.item) for p, (e, a, i) in planned.items()},
                                    dict.fromkeys(planned, max_match_mm), metal_hu=metal_hu)
    out.warnings += notes

    pids = list(planned)
    table = np.array([[cost(pid, o) for o in objects] for pid in pids]).reshape(len(pids), len(objects))
    matched = {pids[i]: k for i, k in _pair_within(table, max_match_mm).items()}
    taken_o = set(matched.values())
    for pid, k in matched.items():
        entry_p, apex_p, imp = planned[pid]
        obj = objects[k]
        others = [o for j, o in enumerate(objects) if j != k]
        tried = []
        for item in (candidate_items(obj, imp.item, plan.catalogue) if refine else [imp.item]):
            start = fit_implant(obj, item, apex_p)
            apex, entry, info, note = start.apex_lps_mm, start.entry_lps_mm, {
                "method": "principal axis", "extent_mm": round(obj.extent_mm, 2),
                "width_mm": round(obj.width_mm, 2)}, ""
            if refine:
                vertex = T_post_from_pre.apply_vectors(implant_vertex_directions(imp)[0])
                roll0 = roll_about_axis_rad(start.axis_unit, vertex)
                apex, entry, info, note = _prism_refine(postop, preop, T_preop_from_postop, obj, others, start, roll0,
                                                        channels)
            tried.append((info.get("rms_hu", np.inf), item, apex, entry, info, note))
        rms, item, apex, entry, info, note = min(tried, key=lambda t: (t[0], t[1].id != imp.item.id))
        if item.id != imp.item.id:
            alt = next(t[0] for t in tried if t[1].id == imp.item.id)
            note = "; ".join(x for x in (note, f"the metal fits {item.id} better than the planned {imp.item.id} "
                                               f"(residual {rms:.0f} vs {alt:.0f} HU)") if x)
        out.matches[pid] = FoundImplant(apex, entry, item, obj.extent_mm, info, note)
    for k, obj in enumerate(objects):
        if k in taken_o:
            continue
        pid, dist = nearest_planned(obj)
        item = planned[pid][2].item
        try:
            item = plan.catalogue.nearest_length(item.family, obj.extent_mm)
        except InputError:  # the neighbour's family is not in the catalogue: keep its size
            pass
        fitted = fit_implant(obj, item, planned[pid][1])
        out.extra.append((FoundImplant(fitted.apex_lps_mm, fitted.entry_lps_mm, item, obj.extent_mm,
                                       {"method": "principal axis", "extent_mm": round(obj.extent_mm, 2)}),
                          pid, dist))
    return out
