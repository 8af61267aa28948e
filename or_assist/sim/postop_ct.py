"""Synthetic post-operative CTs with known ground truth, for tests and benchmarks.

A post-op CT is made from a real pre-op CT: the whole CT is moved by a known rigid
motion ``T_postop_from_preop`` (the patient lies differently in the second scan), then
the placed implants (perturbed from the plan by a known apex shift and tilt) are burnt
in at their moved positions with partial volume (:func:`or_assist.render.implants.burn_implants`
voxelises each convex implant mesh), blurred by the scanner's point spread and shown as
titanium is on a standard CT: far above bone and clipped to the scanner's maximum
(3071 HU). Optional mild noise and streaks.

Examples
--------
>>> placed = [perturbed_implant(imp, [2.0, 1.0, -1.5], 4.0) for imp in plan.implants]  # doctest: +SKIP
>>> motion = rigid_motion([2.0, -1.5, 3.0], [4.0, -3.0, 2.5], centre_mm=[0, -100, 210])  # doctest: +SKIP
>>> postop = synthesize_postop_ct(preop, placed, motion)                                 # doctest: +SKIP
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from or_assist.core.ct.volume import CTVolume
from or_assist.core.pose import Pose, rotation_about_axis
from or_assist.core.plan import Implant, implant_mesh
from or_assist.errors import InputError
from or_assist.postop.register_check import pose_to_sitk

__all__ = ["perturbed_implant", "rigid_motion", "synthesize_postop_ct", "implant_fraction_volume",
           "APPEARANCE_FAMILIES", "appearance_kwargs"]

#: Scanner/implant appearances of a post-op CT (keyword arguments of :func:`synthesize_postop_ct`):
#: ``standard`` solid titanium (12000 HU) clipped at 3071; ``cannulated`` the same with a
#: 3.3 mm central channel; ``metal_NNNN`` solid metal at NNNN HU on an extended (unclipped)
#: scale; ``clip_3071`` metal at 3500 HU clipped at 3071; ``cannulated_2500`` both;
#: ``fenestrated*`` and ``porous*`` implant designs (see :func:`synthesize_postop_ct`).
APPEARANCE_FAMILIES: dict[str, dict] = {
    "standard": {},
    "cannulated": {"cannulation_mm": 3.3},
    "metal_2000": {"metal_hu": 2000.0, "hu_max": 4095.0},
    "metal_2500": {"metal_hu": 2500.0, "hu_max": 4095.0},
    "metal_3000": {"metal_hu": 3000.0, "hu_max": 4095.0},
    "metal_4000": {"metal_hu": 4000.0, "hu_max": 4095.0},
    "clip_3071": {"metal_hu": 3500.0, "hu_max": 3071.0},
    "cannulated_2500": {"metal_hu": 2500.0, "hu_max": 4095.0, "cannulation_mm": 3.3},
    # implant designs (issue 19, item 2): ``fenestrated`` rows of 3 mm through-holes in every
    # face; ``porous`` a 1 mm rough coating at 40 % density; with a channel and dim metal too
    "fenestrated": {"fenestration_mm": 3.0},
    "porous": {"porous_mm": 1.0},
    "fenestrated_cannulated": {"fenestration_mm": 3.0, "cannulation_mm": 3.3},
    "fenestrated_cannulated_2500": {"metal_hu": 2500.0, "hu_max": 4095.0, "fenestration_mm": 3.0,
                                    "cannulation_mm": 3.3},
    "porous_cannulated_2500": {"metal_hu": 2500.0, "hu_max": 4095.0, "porous_mm": 1.0, "cannulation_mm": 3.3},
}


def appearance_kwargs(family: str) -> dict:
    """Keyword arguments of :func:`synthesize_postop_ct` for a named appearance family.

    Parameters
    ----------
    family : str
        A key of :data:`APPEARANCE_FAMILIES`.

    Returns
    -------
    dict
        A copy (safe to modify).
    """
    if family not in APPEARANCE_FAMILIES:
        raise InputError(f"unknown appearance family {family!r}; known: {', '.join(APPEARANCE_FAMILIES)}",
                         "family")
    return dict(APPEARANCE_FAMILIES[family])


def perturbed_implant(implant: Implant, apex_shift_mm: Sequence[float], tilt_deg: float,
                      tilt_axis: Sequence[float] | None = None) -> Implant:
    """The implant as placed: tilted about its apex, then shifted.

    Parameters
    ----------
    implant : Implant
        As planned.
    apex_shift_mm : (3,) array_like
        LPS displacement of the apex, mm.
    tilt_deg : float
        Angle between the planned and placed axes, degrees.
    tilt_axis : (3,) array_like, optional
        Rotation axis (made perpendicular to the implant axis); default: the implant axis
        crossed with patient superior (a tilt in the plane of the axis and S).

    Returns
    -------
    Implant
        Same id, side, item, roll and level; entry-apex length = the item's catalogue
        length (the physical implant).
    """
    a = implant.axis_unit
    ref = np.cross(a, [0.0, 0.0, 1.0]) if tilt_axis is None else np.asarray(tilt_axis, dtype=np.float64)
    ref = ref - a * (ref @ a)
    if not np.all(np.isfinite(ref)) or np.linalg.norm(ref) < 1e-9:
        raise InputError(f"must not be parallel to the implant axis {a.round(3).tolist()}", "tilt_axis")
    new_axis = rotation_about_axis(ref, math.radians(tilt_deg)) @ a
    apex = implant.apex_lps_mm + np.asarray(apex_shift_mm, dtype=np.float64)
    entry = apex - float(implant.item.length_mm) * new_axis
    return Implant(implant.id, implant.side, implant.item, entry, apex, implant.roll_deg, implant.level)


def rigid_motion(rotation_deg: Sequence[float], translation_mm: Sequence[float],
                 centre_mm: Sequence[float] = (0.0, 0.0, 0.0)) -> Pose:
    """A rigid motion: rotations about LPS x, then y, then z through a centre, then a shift.

    Parameters
    ----------
    rotation_deg : (3,) array_like
        Angles about the LPS x, y and z axes, degrees (applied in that order).
    translation_mm : (3,) array_like
        Displacement of ``centre_mm``, mm.
    centre_mm : (3,) array_like
        The point the rotations turn about (e.g. the sacrum), LPS mm.

    Returns
    -------
    Pose
        Maps a point to its moved position: ``p -> R (p - c) + c + t``.
    """
    rx, ry, rz = (math.radians(float(v)) for v in rotation_deg)
    r = rotation_about_axis([0, 0, 1], rz) @ rotation_about_axis([0, 1, 0], ry) @ rotation_about_axis([1, 0, 0], rx)
    c = np.asarray(centre_mm, dtype=np.float64)
    return Pose.from_rotation_translation(r, c + np.asarray(translation_mm, dtype=np.float64) - r @ c)


def implant_fraction_volume(grid: CTVolume, meshes: Sequence[tuple[np.ndarray, np.ndarray]],
                            supersample: int = 4) -> np.ndarray:
    """Voxel fractions inside convex meshes, on the grid of a CT.

    Parameters
    ----------
    grid : CTVolume
        Only its geometry is used.
    meshes : sequence of (vertices (V, 3) LPS mm, faces (F, 3) int)
        Closed convex meshes inside the CT box.
    supersample : int
        Sub-voxel points per axis.

    Returns
    -------
    (Z, Y, X) float32 ndarray
        Fraction of each voxel inside the union of the meshes (overlaps count once at most).
    """
    from or_assist.render.drr import AttenuationVolume  # numba: imported on use
    from or_assist.render.implants import burn_implants

    empty = AttenuationVolume(np.zeros(grid.hu.shape, np.float32), grid.origin_mm, grid.spacing_mm, grid.direction)
    burnt = burn_implants(empty, list(meshes), 1.0, supersample=supersample)
    return np.clip(burnt.mu_per_mm, 0.0, 1.0)


def _streaks(frac: np.ndarray, amplitude_hu: float, rng: np.random.Generator) -> np.ndarray:
    """Radial bright/dark bands about the metal in each axial (k) slice, fading over ~30 voxels."""
    out = np.zeros_like(frac)
    kk, jj, ii = np.meshgrid(np.arange(frac.shape[0]), np.arange(frac.shape[1]), np.arange(frac.shape[2]),
                             indexing="ij", sparse=True)
    for k in np.flatnonzero(frac.reshape(frac.shape[0], -1).max(axis=1) > 0.5):
        w = frac[k]
        cj, ci = (np.argwhere(w > 0.5).mean(axis=0))
        dj, di = jj[0] - cj, ii[0] - ci
        r = np.hypot(dj, di)
        theta = np.arctan2(dj, di)
        phase = rng.uniform(0, 2 * np.pi)
        out[k] = amplitude_hu * np.cos(6 * theta + phase) * np.exp(-r / 10.0) * (r > 2.0)
    return out


def _fenestrations(imp: Implant, diameter_mm: float, T: Pose) -> list:
    """Round holes (cylinders) from the axis out through each face, moved by ``T`` (see :func:`synthesize_postop_ct`)."""
    from or_assist.core.instruments import GuidePin
    from or_assist.core.plan import implant_vertex_directions

    a = imp.axis_unit
    taper = min(float(imp.item.tip_taper_mm), 0.5 * imp.length_mm)
    body = imp.length_mm - taper
    centres = np.arange(diameter_mm, body - diameter_mm + 1e-9, 2.0 * diameter_mm)
    out = []
    for k, vertex in enumerate(implant_vertex_directions(imp)):
        face = -vertex                                         # outward normal of the face opposite vertex k
        for j, t in enumerate(centres):
            p = imp.entry_lps_mm + t * a
            out.append(GuidePin(T.apply(p + (imp.item.inscribed_radius_mm + 1.0) * face), T.apply(p),
                                diameter_mm=diameter_mm, id=f"hole {imp.id} {k} {j}"))
    return out


def _coating(grid: CTVolume, frac: np.ndarray, placed: Sequence[Implant], T: Pose, thickness_mm: float,
             density: float, supersample: int, seed: int) -> np.ndarray:
    """Metal fraction of a rough porous layer on the implants' faces (see :func:`synthesize_postop_ct`)."""
    from or_assist.core.catalogue import CatalogueItem

    coated = []
    for imp in placed:
        it = imp.item
        big = CatalogueItem(it.id, it.inscribed_diameter_mm + 2.0 * thickness_mm, it.length_mm, it.tip_taper_mm)
        v, f = implant_mesh(Implant(imp.id, imp.side, big, imp.entry_lps_mm, imp.apex_lps_mm, imp.roll_deg,
                                    imp.level))
        coated.append((T.apply(v), f))
    shell = np.clip(implant_fraction_volume(grid, coated, supersample) - frac, 0.0, 1.0)
    rough = np.random.default_rng([seed, 19]).uniform(0.5, 1.5, frac.shape).astype(np.float32)
    return shell * np.float32(density) * rough


def synthesize_postop_ct(preop: CTVolume, placed: Sequence[Implant], T_postop_from_preop: Pose, *,
                         metal_hu: float = 12000.0, hu_max: float = 3071.0, blur_mm: float = 1.0,
                         noise_hu: float = 0.0, streak_hu: float = 0.0, seed: int = 0,
                         supersample: int = 10, cannulation_mm: float = 0.0, fenestration_mm: float = 0.0,
                         porous_mm: float = 0.0, porous_density: float = 0.4) -> CTVolume:
    """A post-operative CT: the pre-op CT moved rigidly, with the placed implants burnt in.

    Parameters
    ----------
    preop : CTVolume
        The pre-operative CT (HU); the result has the same grid (origin, spacing,
        direction, size).
    placed : sequence of Implant
        The implants as placed, in the **pre-op** patient frame (LPS mm); they are moved
        with the patient. Each must lie inside the CT after the motion.
    T_postop_from_preop : Pose
        Where a pre-op point lies in the post-op CT (the known rigid motion);
        the registration should recover its inverse, ``T_preop_from_postop``.
    metal_hu : float
        HU of solid titanium before clipping (titanium is about 10-15 thousand HU on an
        extended scale).
    hu_max : float
        The scanner's maximum (3071 on a standard 12-bit scale): values are clipped.
    blur_mm : float
        Gaussian sigma (mm) of the scanner's point spread applied to the metal fraction.
    noise_hu, streak_hu : float
        Gaussian noise sigma and streak amplitude (HU); 0 = none.
    seed : int
        Noise and streak phases.
    supersample : int
        Sub-voxel points per axis for the partial-volume fraction.
    cannulation_mm : float
        Diameter (mm) of a central channel along each implant's whole length (cannulated
        implants placed over a guide pin: 3.3 mm); 0 = solid.
    fenestration_mm : float
        Diameter (mm) of round holes through the walls (fenestrated implants, for bone
        to grow through): one row per face, perpendicular to it from the surface to the
        axis (into the channel when cannulated), centres every ``2 * fenestration_mm``
        along the body between one diameter from the entry and one from the tapered
        tip; 0 = none. (The hole pattern of real implants differs per design and is
        unverified here.)
    porous_mm, porous_density : float
        Thickness (mm) of a porous coating on the implant's faces (a larger triangle,
        inscribed diameter plus ``2 * porous_mm``, same tip), and its mean metal share
        (0-1); each voxel's share of the coating varies at random by +-50 % about the
        mean (a rough surface that makes the metal look larger and irregular); 0 = none.

    Returns
    -------
    CTVolume
        ``source`` is ``"synthetic post-op CT"``.
    """
    if not isinstance(T_postop_from_preop, Pose):
        raise InputError(f"expected a Pose, got {type(T_postop_from_preop).__name__}", "T_postop_from_preop")
    for name, val in (("cannulation_mm", cannulation_mm), ("fenestration_mm", fenestration_mm),
                      ("porous_mm", porous_mm)):
        if not np.isfinite(val) or val < 0:
            raise InputError(f"must be a finite length >= 0 mm, got {val!r}", name)
    if not np.isfinite(porous_density) or not 0.0 < porous_density <= 1.0:
        raise InputError(f"must be in (0, 1], got {porous_density!r}", "porous_density")
    img = preop.to_sitk()
    moved = sitk.Resample(img, img, pose_to_sitk(T_postop_from_preop.inverse()), sitk.sitkLinear, -1000.0,
                          sitk.sitkFloat32)
    grid = CTVolume.from_sitk(moved)
    meshes = []
    for imp in placed:
        v, f = implant_mesh(imp)
        meshes.append((T_postop_from_preop.apply(v), f))
    hu = grid.hu.astype(np.float32)
    if meshes:
        frac = implant_fraction_volume(grid, meshes, supersample)
        if porous_mm > 0:        # the layer on the solid implant's faces (holes and channel open under it)
            coating = _coating(grid, frac, placed, T_postop_from_preop, float(porous_mm), float(porous_density),
                               supersample, seed)
        if cannulation_mm > 0:
            from or_assist.core.instruments import GuidePin

            channels = []
            for imp in placed:
                a = imp.axis_unit
                channels.append(GuidePin(T_postop_from_preop.apply(imp.apex_lps_mm + 1.0 * a),
                                         T_postop_from_preop.apply(imp.entry_lps_mm - 1.0 * a),
                                         diameter_mm=float(cannulation_mm), id=f"channel {imp.id}"))
            frac = np.clip(frac - implant_fraction_volume(grid, channels, supersample), 0.0, 1.0)
        if fenestration_mm > 0:
            holes = [h for imp in placed for h in _fenestrations(imp, float(fenestration_mm), T_postop_from_preop)]
            frac = np.clip(frac - implant_fraction_volume(grid, holes, supersample), 0.0, 1.0)
        if porous_mm > 0:
            frac = np.clip(frac + coating, 0.0, 1.0)
        if blur_mm > 0:
            fimg = sitk.GetImageFromArray(frac)
            fimg.CopyInformation(moved)
            frac = sitk.GetArrayFromImage(sitk.DiscreteGaussian(fimg, float(blur_mm) ** 2, 32, 0.01, True))
        hu = hu + frac * (np.float32(metal_hu) - hu)
    rng = np.random.default_rng(seed)
    if streak_hu > 0 and meshes:
        hu = hu + _streaks(frac, float(streak_hu), rng)
    if noise_hu > 0:
        hu = hu + rng.normal(0.0, float(noise_hu), hu.shape).astype(np.float32)
    hu = np.clip(hu, -1024.0, float(hu_max))
    return CTVolume(hu, grid.origin_mm, grid.spacing_mm, grid.direction, source="synthetic post-op CT")
