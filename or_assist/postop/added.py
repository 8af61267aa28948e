"""Metal the pre-op CT lacks: implants segmented from the post-op minus the registered pre-op.

A threshold on the post-op HU must stay above cortical bone (1800 HU), and faint metal
(a fenestrated and cannulated implant at 2500 HU on 3 mm voxels keeps most of its
voxels at 700-1700 HU after partial volume) then breaks into thin rods along the
triangle's corners: one implant becomes four or five pieces, the fit takes one of them
(issue 19: 12.5 mm / 10.7 deg off, 4 extra pieces on seed 67). Subtracting the
registered pre-op (resampled onto the post-op grid with the registration) cancels the
anatomy: what is left is what was added, the metal and its partial volume, so a much
lower level is safe there.

:func:`added_hu` is that difference (very negative where the pre-op does not cover the
post-op voxel, so nothing there counts as added). :func:`regroup_added_metal` replaces
the threshold objects by the **added-metal objects**: the face-connected components of
``added >= level_hu`` (500 HU) that hold a voxel at or above the scan's metal threshold
(a seed, as before; or, for metal dimmer than every threshold, an implant-sized rod that
adds twice the level somewhere, :data:`FAINT_PEAK_FACTOR`), each built from all its voxels with weights proportional to the
added HU (the metal fraction), so its centroid and principal axis are the whole
implant's, not those of the fragments that passed the threshold. Kept as they are:

* threshold objects outside every such component (metal the pre-op already had, such as
  the hip prosthesis; metal outside the pre-op's coverage), so they are still listed as
  ignored or extra;
* the threshold objects of a component that holds two or more implant-like ones (at
  least half an implant's width and a quarter of its volume) and no fragment: implants
  already apart. Bright metal (titanium at
  12000 HU clipped at 3071) adds 500 HU at a 4 % metal fraction, so the added metal of
  implants 10 mm apart joins where their threshold objects did not.

Metal added away from the plan is an added-metal object like any other and is classified
(ignored or extra) by the caller the same way. An added-metal object holding two touching
implants (a faint implant's fragments beside another implant) is split later like any
other (:func:`or_assist.postop.pieces.split_touching`).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from or_assist.core.catalogue import CatalogueItem
from or_assist.core.ct.volume import CTVolume
from or_assist.core.pose import Pose
from or_assist.errors import InputError
from or_assist.postop.metal import METAL_FLOOR_HU
from or_assist.postop.pieces import item_volume_mm3, single_width_mm
from or_assist.postop.segment import MetalObject, _merge_collinear, _object_from_points

__all__ = ["ADDED_HU", "added_hu", "regroup_added_metal"]

#: Level of added HU (post-op minus registered pre-op) down to which an implant's voxels
#: belong to it: 5-10 times the difference left by noise, streaks and a 0.1 mm / 0.1 deg
#: registration error away from metal (at most 170 HU on the benchmark's cases), a third
#: of the metal fraction of 2000 HU metal over 500 HU bone.
ADDED_HU = 500.0
#: An added-metal region under every threshold counts as an implant when it adds this many
#: times the level somewhere (and is implant-sized and rod-like, :func:`_rod_like`): a
#: fenestrated, cannulated implant of 2500 HU metal on 3 mm voxels peaked at 1585 HU added
#: (1731 HU, under the 1800 HU floor; seed 103), nothing else near the plan above 500.
FAINT_PEAK_FACTOR = 2.0
#: Value of the resampled pre-op where it does not cover the post-op voxel (nothing added there).
_OUTSIDE_HU = 1.0e5


def added_hu(postop: CTVolume, preop: CTVolume, T_preop_from_postop: Pose) -> np.ndarray:
    """Post-op HU minus the registered pre-op HU, on the post-op grid.

    Parameters
    ----------
    postop : CTVolume
        The post-op CT (or a region of it), HU.
    preop : CTVolume
        The pre-op CT (or a crop), HU; resampled (linear) onto the post-op grid.
    T_preop_from_postop : Pose
        The registration.

    Returns
    -------
    (Z, Y, X) float32 ndarray
        The added HU; about ``-1e5`` where the pre-op does not cover the voxel.
    """
    from or_assist.postop.register_check import pose_to_sitk

    if not isinstance(T_preop_from_postop, Pose):
        raise InputError(f"expected a Pose, got {type(T_preop_from_postop).__name__}", "T_preop_from_postop")
    pre = sitk.GetArrayFromImage(sitk.Resample(sitk.Cast(preop.to_sitk(), sitk.sitkFloat32), postop.to_sitk(),
                                               pose_to_sitk(T_preop_from_postop), sitk.sitkLinear, _OUTSIDE_HU,
                                               sitk.sitkFloat32))
    return postop.hu.astype(np.float32) - pre


def _rod_like(postop: CTVolume, region: np.ndarray, smallest: CatalogueItem) -> bool:
    """Whether a region's principal extent reaches half the smallest implant's length (a faint
    implant under every threshold; bone graft in the joint is a slab)."""
    pts = postop.index_to_lps(np.argwhere(region)[:, ::-1].astype(np.float64))
    centred = pts - pts.mean(axis=0)
    axis = np.linalg.eigh(centred.T @ centred)[1][:, -1]
    along = centred @ axis
    return float(along.max() - along.min()) >= 0.5 * float(smallest.length_mm)


def _labels_of(ct: CTVolume, labels: np.ndarray, obj: MetalObject) -> np.ndarray:
    idx = np.round(ct.lps_to_index(obj.points_lps_mm)).astype(int)
    return labels[idx[:, 2], idx[:, 1], idx[:, 0]]


def regroup_added_metal(postop: CTVolume, preop: CTVolume, T_preop_from_postop: Pose,
                        objects: list[MetalObject], *, metal_hu: float, smallest: CatalogueItem,
                        level_hu: float = ADDED_HU, min_volume_mm3: float = 100.0) -> list[MetalObject]:
    """The metal objects with the implants taken from the added metal (module doc).

    Parameters
    ----------
    postop : CTVolume
        The post-op CT the ``objects`` were segmented in (channels filled, HU).
    preop : CTVolume
        The pre-op CT (or a crop covering the plan).
    T_preop_from_postop : Pose
        The registration.
    objects : list of MetalObject
        The threshold objects (:func:`or_assist.postop.segment.find_metal_objects`).
    metal_hu : float
        The scan's metal threshold: an added-metal component needs a voxel at or above it,
        or, when it holds a quarter of the smallest implant's volume, a voxel at or above
        :data:`or_assist.postop.metal.METAL_FLOOR_HU` (a faint implant beside brighter metal
        that set the threshold above it).
    smallest : CatalogueItem
        The smallest planned implant: a threshold object at least half its width
        (``4 sigma`` across the axis, :func:`or_assist.postop.pieces.single_width_mm`) and a
        quarter of its volume is implant-like, a smaller one a fragment. A component holding two
        or more implant-like objects and no fragment keeps its threshold objects as they
        are (implants already apart; the added metal of bright implants a few
        millimetres apart joins).
    level_hu : float
        Added HU down to which voxels belong to the component (default :data:`ADDED_HU`).
    min_volume_mm3 : float
        Smaller components are dropped (as in ``find_metal_objects``).

    Returns
    -------
    list of MetalObject
        Largest first: one object per added-metal component taken, and the threshold
        objects outside those, unchanged.
    """
    if not isinstance(smallest, CatalogueItem):
        raise InputError(f"expected a CatalogueItem, got {type(smallest).__name__}", "smallest")
    if not np.isfinite(level_hu) or level_hu <= 0:
        raise InputError(f"must be a positive HU difference, got {level_hu!r}", "level_hu")
    added = added_hu(postop, preop, T_preop_from_postop)
    binary = sitk.GetImageFromArray((added >= level_hu).astype(np.uint8))
    labels = sitk.GetArrayFromImage(sitk.ConnectedComponent(binary, False))
    voxel_mm3 = float(np.prod(postop.spacing_mm))
    seeded = np.unique(labels[(postop.hu >= metal_hu) & (labels > 0)])
    # a faint implant may stay under a threshold that brighter metal (a prosthesis) set: its added
    # metal counts when it holds a quarter of an implant's volume and reaches the floor (never bone)
    # or, under the floor everywhere (a fenestrated, cannulated implant of dim metal on 3 mm voxels),
    # adds FAINT_PEAK_FACTOR times the level somewhere and is a rod half an implant long
    n_labels = int(labels.max())
    ids = np.arange(1, n_labels + 1)
    big = np.bincount(labels.ravel(), minlength=n_labels + 1)[1:] * voxel_mm3 >= 0.25 * item_volume_mm3(smallest)
    reach = np.unique(labels[(postop.hu >= min(metal_hu, METAL_FLOOR_HU)) & (labels > 0)])
    peak = np.asarray(ndimage.maximum(added, labels, ids)) if n_labels else np.zeros(0)
    faint = [lab for lab in ids[big] if lab not in seeded and (
        lab in reach or (peak[lab - 1] >= FAINT_PEAK_FACTOR * level_hu and _rod_like(postop, labels == lab, smallest)))]
    seeded = np.union1d(seeded, np.asarray(faint, dtype=seeded.dtype))
    seeded = seeded[seeded > 0]
    if seeded.size == 0:
        return list(objects)
    kept, take = [], set()
    for lab in seeded:
        inside = [o for o in objects if np.any(_labels_of(postop, labels, o) == lab)]
        wide = [o.width_mm >= 0.5 * single_width_mm(smallest) and o.volume_mm3 >= 0.25 * item_volume_mm3(smallest)
                for o in inside]
        if sum(wide) >= 2 and all(wide):      # separate implants already, and no fragment among them
            kept += [o for o in inside if all(o is not k for k in kept)]
        else:
            take.add(int(lab))
    for obj in objects:              # threshold objects outside the components taken stay as they are
        if all(obj is not k for k in kept) and not np.any(np.isin(_labels_of(postop, labels, obj), list(take))):
            kept.append(obj)
    diff = CTVolume(np.maximum(added, -1000.0), postop.origin_mm, postop.spacing_mm, postop.direction,
                    source="added metal")
    grown = []
    for lab in sorted(take):
        kji = np.argwhere(labels == lab)
        if len(kji) * voxel_mm3 < min_volume_mm3:
            continue
        val = added[kji[:, 0], kji[:, 1], kji[:, 2]].astype(np.float64)
        top = max(float(np.percentile(val, 95)), level_hu + 1.0)
        weights = np.clip(val / top, 0.05, 1.0)              # about the voxel's metal fraction
        pts = postop.index_to_lps(kji[:, ::-1].astype(np.float64))
        grown.append(_object_from_points(diff, pts, weights, voxel_mm3, level_hu))
    if len(grown) > 1:
        grown = _merge_collinear(diff, grown, voxel_mm3, level_hu)
    return sorted(kept + grown, key=lambda o: -o.volume_mm3)
