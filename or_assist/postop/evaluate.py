"""Post-operative CT evaluation of one case: planned vs placed implants.

Pipeline (:func:`evaluate_case`):

1. **Register** the post-op CT to the pre-op CT cropped to the plan's implants plus
   ``roi_margin_mm`` (:mod:`or_assist.postop.register3d`). A registration whose bone
   overlap stays low, or one that maps a planned implant outside the post-op CT, means
   the scans do not show the same anatomy: an :class:`InputError` says so. A
   registration that is not a local maximum of the bone overlap (a misregistration,
   :func:`~or_assist.postop.register3d.check_registration`) is refused the same way,
   with its reason: no deviations are reported from it.
2. **Segment** the metal (:mod:`or_assist.postop.segment`) in the post-op region around
   the registered plan (``far_mm`` + 15 mm; the scan's metal threshold from that region).
   Metal objects farther than ``far_mm`` from every planned implant (a hip prosthesis, a
   spinal rod) are ignored and listed (those in that region); objects that two planned implants claim are split (touching implants).
   The implants are taken from the metal the pre-op lacks (post-op minus the registered
   pre-op, :mod:`or_assist.postop.added`), so a faint hollow implant is one object.
3. **Match** planned and found implants greedily by the distance from the planned apex
   to the object's nearest metal voxel (smallest first, at most ``max_match_mm``); a planned
   implant without a match is "not found", an implant-like object left over near the plan
   is an **extra** implant (reported, with a warning).
4. **Fit** each match: principal axis and centroid with the catalogue geometry, then the
   sub-voxel triangular-prism fit (:mod:`or_assist.postop.prism_fit`).
5. **Measure** in the plan's frame: apex deviation (mm, and its LPS components), angle
   between the axes (deg), entry deviation (mm), and the **breach check**: the placed
   implant's clearance to each foramen and canal landmark of the plan (surface to sphere,
   the distance :mod:`or_assist.planning.checks` uses), breached when negative.

Examples
--------
>>> evaluate_files("plan.json", "postop_ct.nii.gz", out_path="eval.json").case  # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from or_assist.core.ct.volume import CTVolume
from or_assist.core.plan import Implant, Plan
from or_assist.planning.checks import CLEARANCE_LANDMARK_KINDS
from or_assist.planning.measure import implant_surface_distance_mm as _surface_distance_mm
from or_assist.errors import InputError
from or_assist.postop.match import FoundImplant, locate_implants
from or_assist.postop.register3d import Registration3D, _coarsened, register_postop_to_preop

__all__ = ["EVALUATION_SCHEMA", "ImplantEvaluation", "CaseEvaluation", "evaluate_case",
           "EvaluationFiles", "evaluate_files"]

EVALUATION_SCHEMA = "or_assist.postop_evaluation/1"


def _vec(v) -> list | None:
    return None if v is None else [round(float(x), 4) for x in v]


@dataclass
class ImplantEvaluation:
    """One planned implant against what the post-op CT shows (plan frame, LPS mm).

    Attributes
    ----------
    id, side, level, planned_item : str
        From the plan (``level`` may be None).
    found : bool
    fitted_item : str or None
        The catalogue size fitted (differs from ``planned_item`` when the metal's length
        says so; see ``note``).
    apex_lps_mm, entry_lps_mm : (3,) float64 or None
        The placed implant, in the plan's (pre-op) frame.
    apex_deviation_mm, angle_deg, entry_deviation_mm : float or None
    apex_offset_lps_mm : (3,) float64 or None
        Placed minus planned apex.
    breach : bool or None
        The placed implant's envelope reaches into a foramen or canal landmark sphere;
        None when the plan has no such landmarks.
    nearest_landmark : str or None
    clearance_mm : float or None
        Surface distance to the nearest of those landmarks (negative = breach).
    fit : dict
        ``method`` ("prism fit" or "principal axis"), ``rms_hu``, ``metal_hu``,
        ``blur_mm``, ``extent_mm``.
    note : str
    """

    id: str
    side: str
    level: str | None
    planned_item: str
    found: bool
    fitted_item: str | None = None
    apex_lps_mm: np.ndarray | None = None
    entry_lps_mm: np.ndarray | None = None
    apex_deviation_mm: float | None = None
    apex_offset_lps_mm: np.ndarray | None = None
    angle_deg: float | None = None
    entry_deviation_mm: float | None = None
    breach: bool | None = None
    nearest_landmark: str | None = None
    clearance_mm: float | None = None
    fit: dict = field(default_factory=dict)
    note: str = ""

    def to_dict(self) -> dict:
        """JSON-friendly fields."""
        return {"id": self.id, "side": self.side, "level": self.level, "planned_item": self.planned_item,
                "found": self.found, "fitted_item": self.fitted_item, "apex_lps_mm": _vec(self.apex_lps_mm),
                "entry_lps_mm": _vec(self.entry_lps_mm), "apex_deviation_mm": self.apex_deviation_mm,
                "apex_offset_lps_mm": _vec(self.apex_offset_lps_mm), "angle_deg": self.angle_deg,
                "entry_deviation_mm": self.entry_deviation_mm, "breach": self.breach,
                "nearest_landmark": self.nearest_landmark, "clearance_mm": self.clearance_mm,
                "fit": self.fit, "note": self.note}


@dataclass
class CaseEvaluation:
    """The evaluation of one post-op CT against its plan.

    Attributes
    ----------
    plan_source, postop_source, preop_source : str
    registration : Registration3D
        ``T_preop_from_postop`` and its quality.
    implants : list of ImplantEvaluation
        In plan order.
    extra : list of dict
        Implant-like metal near the plan that no planned implant matches: ``apex_lps_mm``,
        ``entry_lps_mm`` (plan frame), ``extent_mm``, ``nearest_planned``,
        ``distance_mm`` (its metal to that implant's planned axis).
    ignored_metal : list of dict
        Metal far from the plan: ``centroid_lps_mm`` (plan frame), ``volume_mm3``,
        ``distance_mm`` (to the nearest planned implant).
    warnings : list of str
    seconds : float
    """

    plan_source: str
    postop_source: str
    preop_source: str
    registration: Registration3D
    implants: list[ImplantEvaluation]
    extra: list[dict] = field(default_factory=list)
    ignored_metal: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def found(self) -> list[ImplantEvaluation]:
        """The implants that were found."""
        return [i for i in self.implants if i.found]

    def to_dict(self) -> dict:
        """The ``or_assist.postop_evaluation/1`` document."""
        found = self.found()

        def stats(name):
            vals = [getattr(i, name) for i in found]
            return None if not vals else {"mean": float(np.mean(vals)), "max": float(np.max(vals))}

        return {"schema": EVALUATION_SCHEMA, "plan": self.plan_source, "postop_ct": self.postop_source,
                "preop_ct": self.preop_source, "registration": self.registration.to_dict(),
                "implants": [i.to_dict() for i in self.implants], "extra_implants": self.extra,
                "ignored_metal": self.ignored_metal, "warnings": list(self.warnings),
                "summary": {"planned": len(self.implants), "found": len(found), "extra": len(self.extra),
                            "apex_deviation_mm": stats("apex_deviation_mm"), "angle_deg": stats("angle_deg"),
                            "entry_deviation_mm": stats("entry_deviation_mm"),
                            "breaches": sum(1 for i in found if i.breach)},
                "seconds": self.seconds}


def _plan_box(plan: Plan) -> tuple[np.ndarray, np.ndarray]:
    pts = np.vstack([np.vstack([i.entry_lps_mm, i.apex_lps_mm]) for i in plan.implants])
    return pts.min(axis=0), pts.max(axis=0)


def _clearance(plan: Plan, placed: Implant) -> tuple[bool | None, str | None, float | None]:
    lms = [lm for lm in plan.landmarks if lm.kind in CLEARANCE_LANDMARK_KINDS]
    if not lms:
        return None, None, None
    d, name = min((_surface_distance_mm(placed, lm.position_lps_mm) - lm.radius_mm, lm.name) for lm in lms)
    return bool(d < 0.0), name, float(d)


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    c = float(np.clip(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)), -1.0, 1.0))
    return float(np.degrees(np.arccos(c)))


def _measure(plan: Plan, imp: Implant, hit: FoundImplant, T_preop_from_postop) -> ImplantEvaluation:
    apex = T_preop_from_postop.apply(hit.apex_lps_mm)
    entry = T_preop_from_postop.apply(hit.entry_lps_mm)
    placed = Implant(imp.id, imp.side, hit.item, entry, apex, 0.0, imp.level)
    breach, landmark, clearance = _clearance(plan, placed)
    return ImplantEvaluation(
        imp.id, imp.side, imp.level, imp.item.id, True, hit.item.id, apex, entry,
        float(np.linalg.norm(apex - imp.apex_lps_mm)), apex - imp.apex_lps_mm,
        _angle_deg(apex - entry, imp.apex_lps_mm - imp.entry_lps_mm),
        float(np.linalg.norm(entry - imp.entry_lps_mm)), breach, landmark, clearance, hit.fit, hit.note)


def _metal_outside(postop: CTVolume, region: CTVolume, plan: Plan, T_post_from_pre, metal_hu: float,
                   min_volume_mm3: float = 100.0) -> list[dict]:
    """Metal objects of the post-op CT wholly outside ``region`` (on the 1.5 mm coarsened scan; post-op frame)."""
    import SimpleITK as sitk

    from or_assist.postop.match import _points_segment_min_mm

    coarse = _coarsened(postop, 1.5)
    labels = sitk.GetArrayFromImage(sitk.ConnectedComponent(sitk.BinaryThreshold(coarse.to_sitk(), float(metal_hu),
                                                                                 1e12, 1, 0)))
    voxel_mm3 = float(np.prod(coarse.spacing_mm))
    counts = np.bincount(labels.ravel())
    out = []
    segments = [T_post_from_pre.apply(np.vstack([i.entry_lps_mm, i.apex_lps_mm])) for i in plan.implants]
    for lab in np.flatnonzero(counts[1:] * voxel_mm3 >= min_volume_mm3) + 1:
        kji = np.argwhere(labels == lab)
        pts = coarse.index_to_lps(kji[:, ::-1].astype(np.float64))
        if np.any(region.contains(pts)):
            continue                       # seen (whole or in part) by the segmentation of the region
        dist = min(_points_segment_min_mm(pts, e, a) for e, a in segments)
        out.append({"centroid_lps_mm": pts.mean(axis=0), "volume_mm3": round(len(pts) * voxel_mm3, 1),
                    "distance_mm": round(float(dist), 1)})
    return out


def evaluate_case(plan: Plan, postop_ct: CTVolume, preop_ct: CTVolume | None = None, *,
                  metal_hu: float | None = None, max_match_mm: float = 20.0, far_mm: float = 40.0,
                  roi_margin_mm: float = 60.0, min_bone_dice: float = 0.5) -> CaseEvaluation:
    """Evaluate the placed implants of a post-op CT against the plan (module doc).

    Parameters
    ----------
    plan : Plan
        With at least one implant; landmarks enable the breach check.
    postop_ct : CTVolume
        The post-operative CT in HU (any position, field of view and grid).
    preop_ct : CTVolume, optional
        The plan's CT; loaded (and its SHA-256 checked) from the plan when omitted.
    metal_hu : float or None
        Metal threshold (HU); None: from the post-op scan's own histogram and the
        catalogue (:func:`or_assist.postop.metal.metal_threshold_hu`, on the region around the
        registered plan), 1800-2500 HU.
    max_match_mm : float
        Largest distance from a planned apex to the found implant's metal for a match.
    far_mm : float
        Metal farther than this from every planned implant is ignored.
    roi_margin_mm : float
        Margin around the plan's implants for the registration region.
    min_bone_dice : float
        Registration quality below which the scans are taken not to overlap.

    Returns
    -------
    CaseEvaluation

    Raises
    ------
    InputError
        A plan without implants; a post-op CT that does not overlap the pre-op CT around
        the plan (registration fails or maps an implant outside it); no implant metal
        near the planned implants.
    """
    from or_assist.core.ct.load import crop_ct
    from or_assist.core.plan import load_plan_ct

    t0 = time.perf_counter()
    where_plan = plan.source or "plan"
    where_post = postop_ct.source or "post-op CT"
    if not plan.implants:
        raise InputError("the plan has no implants to evaluate", where_plan)
    if preop_ct is None:
        preop_ct, _ = load_plan_ct(plan)
    lo, hi = _plan_box(plan)
    roi = crop_ct(preop_ct, lo, hi, margin_mm=roi_margin_mm)
    from or_assist.postop.metal import fill_metal_channels, metal_threshold_hu

    given_metal_hu = metal_hu
    if metal_hu is None:       # for the registration's metal masks: on the coarsened scan (fast, close enough)
        metal_hu = metal_threshold_hu(fill_metal_channels(_coarsened(postop_ct, 1.5)), plan.catalogue)
    reg = register_postop_to_preop(roi, postop_ct, metal_hu=metal_hu, min_dice=min_bone_dice)
    T_post_from_pre = reg.T_preop_from_postop.inverse()
    if not reg.success and reg.check is not None and (reg.bone_dice >= min_bone_dice
                                                      or reg.check.reason.startswith("the post-op CT is sheared")):
        raise InputError(f"registration to the pre-op CT refused, no deviations reported: {reg.check.reason}",
                         where_post)
    if not reg.success:
        raise InputError(
            f"does not overlap the pre-op CT around the planned implants: after registration only "
            f"{reg.bone_dice:.2f} of the bone matches (Dice; >= {min_bone_dice:g} expected); is it a CT of "
            f"the same patient covering the sacrum and pelvis? ({reg.message})", where_post)
    outside = [i.id for i in plan.implants
               if not np.all(postop_ct.contains(T_post_from_pre.apply(np.vstack([i.entry_lps_mm, i.apex_lps_mm]))))]
    if outside:
        raise InputError(f"does not cover planned implant(s) {', '.join(outside)} after registration to the "
                         f"pre-op CT; the post-op scan must include the whole sacrum and the iliac wings",
                         where_post)
    # the metal stages on the post-op region around the registered plan (a thin-slice scan's whole
    # volume costs minutes of channel filling for metal that is ignored anyway)
    corners = T_post_from_pre.apply(np.vstack([np.vstack([i.entry_lps_mm, i.apex_lps_mm]) for i in plan.implants]))
    post_roi = crop_ct(postop_ct, corners.min(0), corners.max(0), margin_mm=far_mm + 15.0)
    # metal_hu None: locate_implants takes the threshold from the channel-filled region (filled once)
    located = locate_implants(plan, post_roi, roi, reg.T_preop_from_postop, metal_hu=given_metal_hu,
                              max_match_mm=max_match_mm, far_mm=far_mm)
    to_pre = reg.T_preop_from_postop
    ignored = [{"centroid_lps_mm": _vec(to_pre.apply(o.centroid_lps_mm)), "volume_mm3": round(o.volume_mm3, 1),
                "distance_mm": round(d, 1)} for o, d in located.ignored]
    ignored += [dict(m, centroid_lps_mm=_vec(to_pre.apply(m["centroid_lps_mm"])))
                for m in _metal_outside(postop_ct, post_roi, plan, T_post_from_pre, metal_hu)]
    if not located.matches and not located.extra:
        why = (f"; {len(ignored)} metal object(s) more than {far_mm:g} mm from the plan were ignored "
               "(e.g. a prosthesis)" if ignored else "")
        raise InputError(f"no implant metal (>= {metal_hu:g} HU) near the planned implants{why}; is this the "
                         "post-operative CT?", where_post)
    results, warnings = [], list(located.warnings)
    for imp in plan.implants:
        hit = located.matches.get(imp.id)
        if hit is None:
            results.append(ImplantEvaluation(imp.id, imp.side, imp.level, imp.item.id, False,
                                             note=f"not found within {max_match_mm:g} mm of the planned apex"))
            warnings.append(f"planned implant {imp.id} not found in the post-op CT")
        else:
            results.append(_measure(plan, imp, hit, to_pre))
    extra = []
    for hit, nearest, dist in located.extra:
        extra.append({"apex_lps_mm": _vec(to_pre.apply(hit.apex_lps_mm)),
                      "entry_lps_mm": _vec(to_pre.apply(hit.entry_lps_mm)), "extent_mm": round(hit.extent_mm, 1),
                      "nearest_planned": nearest, "distance_mm": round(dist, 1)})
    if extra:
        warnings.append(f"{len(located.matches) + len(extra)} implants found near the plan but "
                        f"{len(plan.implants)} planned: {len(extra)} extra implant(s) not in the plan")
    return CaseEvaluation(where_plan, where_post, preop_ct.source or "pre-op CT", reg, results, extra, ignored,
                          warnings, time.perf_counter() - t0)


@dataclass(frozen=True)
class EvaluationFiles:
    """One case evaluated from its files (``or-assist evaluate --plan ... --postop ...``).

    Attributes
    ----------
    case : CaseEvaluation
    warnings : list of str
        From loading the pre-op CT (e.g. its SHA-256 differs from the plan's).
    written : Path or None
        The ``or_assist.postop_evaluation/1`` JSON written, if one was asked for.
    """

    case: CaseEvaluation
    warnings: list[str]
    written: Path | None = None


def evaluate_files(plan_path: str | os.PathLike, postop_path: str | os.PathLike,
                   preop_path: str | os.PathLike | None = None, out_path: str | os.PathLike | None = None,
                   *, ignore_hash: bool = False) -> EvaluationFiles:
    """Evaluate one case given as files (``or-assist evaluate``).

    Parameters
    ----------
    plan_path : path-like
        An ``or_assist.plan/1`` file.
    postop_path : path-like
        The post-operative CT (DICOM folder or volume file).
    preop_path : path-like, optional
        The pre-operative CT; default: the plan's own CT.
    out_path : path-like, optional
        Write the ``or_assist.postop_evaluation/1`` JSON here.
    ignore_hash : bool
        Accept a pre-op CT whose voxel SHA-256 differs from the plan's (a warning).

    Returns
    -------
    EvaluationFiles

    Raises
    ------
    InputError
        Bad files, and the cases listed in :func:`evaluate_case`.
    """
    from or_assist.core import jsonio
    from or_assist.core.ct.load import load_ct
    from or_assist.core.plan import load_plan, load_plan_ct

    plan = load_plan(plan_path)
    preop, warnings = load_plan_ct(plan, ct_path=None if preop_path is None else Path(preop_path),
                                   allow_ct_mismatch=ignore_hash)
    postop = load_ct(postop_path)
    case = evaluate_case(plan, postop, preop)
    if out_path is not None:
        jsonio.write_json(Path(out_path), case.to_dict())
    return EvaluationFiles(case, list(warnings), None if out_path is None else Path(out_path))
