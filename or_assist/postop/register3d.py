"""Rigid 3D/3D registration of a post-operative CT to the pre-operative (planning) CT.

The post-op CT shows the same bones as the pre-op CT but in another position, plus the
new implants (and their streaks). The registration (SimpleITK
``ImageRegistrationMethod``) finds ``T_preop_from_postop``, the rigid transform that maps
a post-op point (LPS mm) to the same anatomical point in the pre-op CT (the plan's frame):

* images: HU clamped to [-200, 2000]; the metric only samples pre-op voxels of bone
  (``bone_hu`` = 150-2000 HU, the fixed mask) and ignores post-op metal (> ``metal_hu``
  = 2500 HU, dilated by ``metal_margin_mm`` so the blooming and streaks next to it count
  neither; the moving mask). Metal of either CT (a hip prosthesis) is excluded in both.
* metric: Mattes mutual information (robust to the post-op's different noise and
  contrast) over every masked voxel (deterministic), linear interpolation.
* optimiser: regular step gradient descent on an Euler3DTransform (rotation about the
  bone centre), scales from physical shifts, three levels (shrink 4, 2, 1; smoothing 2,
  1, 0 voxels; each image smoothed once per level, :mod:`or_assist.postop.register_local`).
* start: a global search (:mod:`or_assist.postop.register_global`): every rotation of a
  grid (-``multistart_deg`` .. +``multistart_deg`` in ``global_step_deg`` steps about each
  LPS axis, 125 rotations for 15 / 7.5 deg) with every shift (FFT correlation of the bone
  masks on 6 mm grids); its best candidates, one per basin, are starts, and so is the
  identity when the two CT boxes overlap (scans of one patient usually share the table
  frame). The identity and the best candidate are run at the coarse level and the one
  with more bone overlap (Dice) is refined. When that result is refused (Dice floor or the
  acceptance check below), multi-start: the other candidates are run at the coarse level,
  the ``multistart_refine`` with most overlap (other poses than those refined) are refined
  and checked, and the accepted one with the most bone overlap wins.

The result carries a quality measure independent of the metric: the Dice overlap of the
two bone masks after registration within the pre-op region (a well registered 3 mm
pelvis scores about 0.8-0.9; a wrong scan or a failed registration well under 0.5).

Acceptance: :mod:`or_assist.postop.register_check` (a local maximum of the bone overlap,
leading every 2 deg / 2 mm neighbour by ``min_margin`` = 0.02 Dice).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from or_assist.core.ct.volume import CTVolume
from or_assist.core.pose import Pose
from or_assist.errors import InputError
from or_assist.postop.register_check import RegistrationCheck, bone_dice, check_registration
from or_assist.postop.register_global import global_candidates
from or_assist.postop.register_local import LevelImages, bone_masks, euler_to_pose, mask_centroid_mm, registration_image

__all__ = ["Registration3D", "register_postop_to_preop", "boxes_overlap_fraction"]

_SHEARED = "the post-op CT is sheared"     # how register_check's shear refusal begins
#: The finest level runs again from its result (at most this often) while the optimiser stops
#: for lack of iterations, not by converging (a 15 deg / 50 mm motion: one run of 200 ended
#: 1.1 deg short and was accepted; the check probes 2 deg steps).
_MORE_FINE_RUNS = 2
#: Once a start was refused as sheared, another start's rigid result must beat that shear's bone overlap by
#: this much (seed 67: a sheared series accepted 16-18 deg off at Dice 0.54 against a shear's 0.53).
_SHEAR_DICE_MARGIN = 0.05
_OUT_OF_ITERATIONS = "Maximum number of iterations"


@dataclass
class Registration3D:
    """A post-op -> pre-op rigid registration.

    Attributes
    ----------
    T_preop_from_postop : Pose
        Maps post-op LPS mm to pre-op LPS mm.
    success : bool
        ``bone_dice >= min_dice``, the optimiser ended normally and the acceptance check
        (:func:`check_registration`, in ``check``) passed.
    metric : str
        ``"mattes_mi"``.
    similarity : float
        Final metric value (negative mutual information: lower is better).
    bone_dice : float
        Dice overlap of the bone masks after registration (0-1).
    seconds : float
        Wall time.
    start : str
        The start that won: ``"identity"``, ``"global search rotated (a, b, c) deg"`` or,
        with no rotations searched, ``"bone correlation"``.
    message : str
        The optimiser's stop condition, or why it failed.
    """

    T_preop_from_postop: Pose
    success: bool
    metric: str
    similarity: float
    bone_dice: float
    seconds: float
    start: str
    message: str
    details: dict = field(default_factory=dict)
    check: RegistrationCheck | None = None

    def to_dict(self) -> dict:
        """JSON-friendly fields (``T_preop_from_postop`` as a 4 x 4 list)."""
        out = {"T_preop_from_postop": self.T_preop_from_postop.matrix.tolist(), "success": self.success,
               "metric": self.metric, "similarity": self.similarity, "bone_dice": self.bone_dice,
               "seconds": self.seconds, "start": self.start, "message": self.message}
        if self.check is not None:
            out["check"] = self.check.to_dict()
        return out


def boxes_overlap_fraction(a: CTVolume, b: CTVolume) -> float:
    """Share of ``a``'s axis-aligned LPS bounding box that ``b``'s bounding box covers (0-1)."""
    ca, cb = a.corners_lps_mm(), b.corners_lps_mm()
    lo = np.maximum(ca.min(0), cb.min(0))
    hi = np.minimum(ca.max(0), cb.max(0))
    inter = float(np.prod(np.clip(hi - lo, 0.0, None)))
    vol = float(np.prod(np.maximum(ca.max(0) - ca.min(0), 1e-9)))
    return inter / vol


def _coarsened(ct: CTVolume, min_spacing_mm: float) -> CTVolume:
    """The CT averaged over blocks of voxels to about ``min_spacing_mm`` per axis (``sitk.BinShrink``).

    A thin-slice post-op scan has 10-50 times the voxels of the 3 mm pre-op region it is
    registered to and no more information for that; every optimiser run smooths and
    shrinks the moving image, so it is coarsened once. Block factors are
    ``round(min_spacing_mm / spacing)`` per axis (at least 1); same direction and box.
    """
    sp = np.asarray(ct.spacing_mm, dtype=np.float64)
    factors = [max(1, int(round(min_spacing_mm / s))) for s in sp] if min_spacing_mm > 0 else [1, 1, 1]
    if factors == [1, 1, 1]:
        return ct
    return CTVolume.from_sitk(sitk.BinShrink(ct.to_sitk(), factors), source=ct.source)


def register_postop_to_preop(preop: CTVolume, postop: CTVolume, *, bone_hu: tuple[float, float] = (150.0, 2000.0),
                             metal_hu: float = 2500.0, metal_margin_mm: float = 6.0,
                             shrink: tuple[int, ...] = (4, 2, 1), smoothing_vox: tuple[float, ...] = (2.0, 1.0, 0.0),
                             iterations: int = 200, histogram_bins: int = 48, sampling: float = 1.0,
                             min_dice: float = 0.5, check: bool = True, multistart_deg: float = 15.0,
                             global_step_deg: float = 7.5, multistart_refine: int = 4, moving_spacing_mm: float = 1.5,
                             shear_slope: float = 0.1, min_margin: float = 0.02) -> Registration3D:
    """Register a post-op CT rigidly to the pre-op CT (method: module doc).

    Parameters
    ----------
    preop : CTVolume
        The fixed image, in the plan's frame; crop it to the region of interest (e.g. the
        pelvis around the plan) for speed.
    postop : CTVolume
        The moving image (the whole post-op CT is fine).
    bone_hu : (float, float)
        HU range of bone used by the metric.
    metal_hu : float
        Metal threshold; metal of either CT is excluded.
    metal_margin_mm : float
        Exclusion margin around metal, mm.
    shrink, smoothing_vox : sequences
        Multi-resolution levels (shrink factors and Gaussian sigmas in voxels).
    iterations : int
        Optimiser iterations per level.
    histogram_bins : int
        Mattes MI bins.
    sampling : float
        Share of the masked pre-op voxels the metric samples (regular grid, seeded: the
        result is deterministic); 1 = all.
    min_dice : float
        Bone Dice below which the registration counts as failed.
    check : bool
        Run the acceptance check (:func:`check_registration`, about 12 Dice evaluations);
        a refused result has ``success=False`` and the check's reason as ``message``.
    multistart_deg : float
        Largest rotation about each LPS axis of the global search's grid (a patient turned
        by up to 15 deg); 0: a search over shifts only and no multi-start.
    global_step_deg : float
        Step of that grid (7.5 deg: a start at most about 6.5 deg from the truth).
    multistart_refine : int
        When the first result fails (Dice floor or check), how many more starts (the
        global search's other candidates, most bone overlap after the coarse level first)
        are refined and checked.
    moving_spacing_mm : float
        A post-op CT with finer voxels is averaged over blocks to about this spacing once,
        before registering (its voxels carry no more for a match to the 3 mm pre-op region;
        without it each optimiser run smooths the whole thin-slice scan); 0: as it is.
    shear_slope : float
        The check also refuses a post-op CT that overlaps better sheared by this slope
        along its slice axis (a gantry-tilted series read without tilt correction); that
        reason is kept when the multi-start finds nothing better; 0: off.
    min_margin : float
        The check's least Dice lead of the result over its 12 neighbours (2 deg / 2 mm
        moves). At the true pose the lead is 0.06-0.09 on every scanner family (seeds 61
        and 67: 0.8 x 0.8 x 3 mm tilted to 0.5 mm pixels); a sheared series once passed at
        a pose 14.5 deg off with a lead of 0.0002 (a flat maximum of a wrong pose).

    Returns
    -------
    Registration3D
        Failure is a value (``success=False`` with a message), not an exception.

    Raises
    ------
    InputError
        The pre-op region has no bone to register, or the post-op CT has no bone at all.
    """
    t0 = time.perf_counter()
    postop = _coarsened(postop, moving_spacing_mm)
    fixed_mask, _ = bone_masks(preop, bone_hu, metal_hu, metal_margin_mm)
    moving_bone, moving_mask = bone_masks(postop, bone_hu, metal_hu, metal_margin_mm)
    c_fixed = mask_centroid_mm(fixed_mask)
    c_moving = mask_centroid_mm(moving_bone)
    if c_fixed is None:
        raise InputError(f"no bone ({bone_hu[0]:g}-{bone_hu[1]:g} HU) in the pre-op region to register to",
                         preop.source or "pre-op CT")
    if c_moving is None:
        raise InputError(f"no bone ({bone_hu[0]:g}-{bone_hu[1]:g} HU) in the post-op CT: is it a CT of the "
                         "patient in Hounsfield units?", postop.source or "post-op CT")
    levels = LevelImages(registration_image(preop), registration_image(postop), fixed_mask, moving_mask, shrink,
                         smoothing_vox, iterations, histogram_bins, sampling)
    found = global_candidates(fixed_mask, preop, moving_bone, postop, c_fixed, max_deg=multistart_deg,
                              step_deg=global_step_deg, keep=max(1, multistart_refine) + 1)
    starts = [("global search " + g.name if multistart_deg > 0 else "bone correlation", g.transform(c_fixed))
              for g in found]
    if boxes_overlap_fraction(preop, postop) > 0.0 or not starts:
        tx = sitk.Euler3DTransform()
        tx.SetCenter(tuple(float(v) for v in c_fixed))
        starts.insert(0, ("identity", tx))
    kw = {"bone_hu": bone_hu, "metal_hu": metal_hu}

    def coarse(name, tx0):
        """The coarsest level from a start: (bone Dice there, metric, name, transform, stop reason)."""
        try:
            tx, value, why = levels.run(tx0, 0, 1)
        except RuntimeError as exc:   # e.g. too few samples inside the moving image
            return -1.0, math.inf, name, tx0, f"failed: {str(exc).splitlines()[-1][:200]}"
        return bone_dice(preop, postop, euler_to_pose(tx).inverse(), **kw), value, name, tx, why

    def sheared_verdict(T):
        """The check's verdict at ``T`` if it finds the scan sheared, else None."""
        v = check_registration(preop, postop, T, centre_mm=c_fixed, min_dice=min_dice, shear_slope=shear_slope, **kw)
        return v if v.reason.startswith(_SHEARED) else None

    def finish(tx, value, why):
        """Refine a coarse result at the finer levels, then score and check it."""
        went_on_from = None     # the fine result the optimiser went on from, if it did
        if math.isfinite(value) and len(shrink) > 1:
            try:
                tx, value, why = levels.run(tx, 1)
                for _ in range(_MORE_FINE_RUNS):      # still descending when its iterations ran out: go on
                    if _OUT_OF_ITERATIONS not in why:
                        break
                    went_on_from = tx if went_on_from is None else went_on_from
                    tx, value, why = levels.run(tx, len(shrink) - 1)
            except RuntimeError as exc:
                value, why = math.inf, f"failed: {str(exc).splitlines()[-1][:200]}"
        T = euler_to_pose(tx).inverse()
        dice = bone_dice(preop, postop, T, **kw)
        ok = math.isfinite(value) and dice >= min_dice
        msg = why if ok else f"bone overlap (Dice {dice:.2f}) below {min_dice:g} after registration; {why}"
        verdict = None
        if ok and check:
            verdict = check_registration(preop, postop, T, centre_mm=c_fixed, min_dice=min_dice, min_margin=min_margin,
                                         shear_slope=shear_slope, **kw)
            if not verdict.accepted:
                ok, msg = False, verdict.reason
        elif check and shear_slope > 0 and math.isfinite(value) and dice >= 0.6 * min_dice:
            # a low overlap may come from a sheared scan: say so rather than "no overlap"
            v = sheared_verdict(T)
            if v is not None:
                verdict, msg = v, v.reason
        if not ok and went_on_from is not None and check and shear_slope > 0 and not msg.startswith(_SHEARED):
            # a sheared scan has no rigid optimum: the optimiser drifts on; say sheared if it looked so before
            v = sheared_verdict(euler_to_pose(went_on_from).inverse())
            if v is not None:
                verdict, msg = v, v.reason
        return T, float(value), msg, float(dice), ok, verdict

    # first pass: the identity (scans of one patient often share the table frame) and the
    # global search's best; the one with more bone overlap after the coarse level is refined
    coarse_runs = [coarse(*s) for s in starts[:2]]
    dice0, value, start, tx, why = max(coarse_runs, key=lambda c: (c[0], -c[1]))
    T, value, msg, dice, ok, verdict = finish(tx, value, why)
    done = [tx]
    if not ok and multistart_deg > 0:
        # multi-start: the other coarse results (the global search's other basins), most overlap
        # first, are refined and checked; the accepted one with the most bone overlap wins
        coarse_runs += [coarse(*s) for s in starts[2:]]
        best = None
        first = (T, value, msg, dice, ok, verdict)
        sheared = (start, first) if msg.startswith(_SHEARED) and verdict is not None else None   # refused as sheared
        for dc, vc, name, txc, wc in sorted(coarse_runs, key=lambda c: (-c[0], c[1])):
            if len(done) > multistart_refine or not math.isfinite(vc) or any(_same_pose(txc, t) for t in done):
                continue
            done.append(txc)
            got = finish(txc, vc, wc)
            if got[4] and (best is None or got[3] > best[1][3]):
                best = (name, got)
            elif got[5] is not None and got[5].sheared_dice > (sheared[1][5].sheared_dice if sheared else -1.0):
                sheared = (name, got)      # NaN: not sheared
        if best is not None and sheared is not None and \
                not best[1][3] >= sheared[1][5].sheared_dice + _SHEAR_DICE_MARGIN:
            # a sheared scan: a rigid pose that explains no more bone than a shear did is a wrong one
            best = None
        if best is not None:
            start, (T, value, msg, dice, ok, verdict) = best
        else:       # a shear seen at any start is the more useful reason: that start's result and verdict
            start, (T, value, msg, dice, ok, verdict) = sheared or (start, first)
            msg = f"{msg} (also after {len(done) - 1} more refined starts of {len(starts)} from a global search " \
                  f"over rotations to {multistart_deg:g} deg)"
    return Registration3D(T, ok, "mattes_mi", float(value), float(dice), time.perf_counter() - t0, start, msg,
                          {"starts": [(c[2], c[1], c[0]) for c in coarse_runs], "refined": len(done),
                           "global": [(g.name, g.score) for g in found]}, verdict)


def _same_pose(a: sitk.Euler3DTransform, b: sitk.Euler3DTransform, deg: float = 1.0, mm: float = 2.0) -> bool:
    """Whether two coarse results are the same pose (within ``deg`` and ``mm`` at the rotation centre)."""
    pa, pb = euler_to_pose(a), euler_to_pose(b)
    c = np.array(a.GetCenter())
    rel = pa.rotation.T @ pb.rotation
    angle = math.degrees(math.acos(max(-1.0, min(1.0, (float(np.trace(rel)) - 1.0) / 2.0))))
    return angle < deg and float(np.linalg.norm(pa.apply(c) - pb.apply(c))) < mm
