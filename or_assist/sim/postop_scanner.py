"""Synthetic post-operative CTs as scanners make them: their own grid, blooming, streaks, motion.

:func:`or_assist.sim.postop_ct.synthesize_postop_ct` makes the post-op CT on the pre-op's
grid. Real post-op scans come on the scanner's own grid and with the scanner's artefacts;
:func:`scanner_postop_ct` makes them, from the pre-op CT (the anatomy, moved by the
patient's motion) and the placed implants:

* **grid**: in-plane spacing (0.5-0.9 mm), slice thickness (0.6-3 mm; the slice profile
  is a box: each slice is the *average* of ``slice_mm`` of anatomy and metal along its
  normal, sampled on sub-slices), gantry tilt (slices tilted about LPS x), flipped or
  permuted index axes (another direction matrix, det -1 included), another origin (the
  scanner's own coordinates: the returned truth includes that shift), a field of view of
  ``fov_mm`` about the implants (at most 512 pixels a row).
* **gantry tilt, sheared**: a tilted series as SimpleITK reads it when the slices were
  stacked along the table (positions step along LPS z) but the volume is declared with
  the tilted slice normal as its third axis (``sheared=True``): the voxels are sheared
  against their declared geometry, as a series read without tilt correction is.
* **blooming as scanners bloom**: the metal fraction is blurred by a *wider* point spread
  than the tissue (``bloom_mm`` more sigma), and the reconstruction kernel adds an
  overshoot inside the metal edge and an undershoot (dark rim) outside it (``rim``, a
  difference of Gaussians): thresholded metal looks larger than it is.
* **streaks**: in each slice, a dark band along the line joining every two metal objects
  of that slice (beam hardening between them) and bright bands continuing beyond them,
  ``streak_hu`` deep, ``streak_width_mm`` wide; plus mild noise.
* **motion**: a rigid motion of the patient, up to 15 deg / 50 mm in the ``motion_15_50``
  family (random axis and direction, seeded).

Families (:data:`SCANNER_FAMILIES`, for ``benchmarks/postop_accuracy.py --family``):
``thin_0.6``, ``fine_0.5``, ``thick_3``, ``thick_3_tilt_20``, ``tilt_30``,
``sheared_tilt_15``, ``flipped``, ``bloom``, ``streaks``, ``motion_15_50``, ``cannulated_1mm``
(3.3 mm channels, metal at 3000 HU unclipped), ``mixed`` (3 mm tilted slices, blooming,
streaks, 12 deg / 40 mm motion, flipped axes, another origin), ``tilted_dicom_15`` and
``tilted_dicom_25`` (gantry-tilted series, 2 mm / 3 mm slices, the latter with the usual
DICOM axial axes and 10 deg / 30 mm motion, written as DICOM with the slices at their true
tilted positions and read back through the project's reader: ``dicom=True``).

Examples
--------
>>> post, truth = scanner_postop_ct(ct, placed, motion, scanner_family("thick_3_tilt_20"))  # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from or_assist.core.ct.volume import CTVolume
from or_assist.core.plan import Implant, implant_mesh
from or_assist.core.pose import Pose, rotation_about_axis
from or_assist.errors import InputError
from or_assist.sim.postop_ct import implant_fraction_volume

__all__ = ["ScannerModel", "SCANNER_FAMILIES", "scanner_family", "scanner_motion", "scanner_postop_ct"]


@dataclass(frozen=True)
class ScannerModel:
    """How a scanner images a post-op patient (module doc).

    Attributes
    ----------
    pixel_mm, slice_mm : float
        In-plane spacing and slice thickness (= slice spacing, contiguous slices), mm.
    tilt_deg : float
        Gantry tilt about LPS x, degrees.
    sheared : bool
        Slices stacked along LPS z but declared along their tilted normal (module doc).
    axes : str
        Index axes as signed LPS letters before the tilt, e.g. ``"xyz"`` (identity),
        ``"-x-yz"`` (the usual DICOM axial: index i to the right), ``"y-xz"``.
    frame_shift_mm : (3,) tuple
        Added to the origin: the scanner's own coordinates.
    fov_mm : (3,) tuple
        Field of view along the index axes, mm (rows capped at 512 pixels).
    metal_hu, hu_max : float
        Metal HU before clipping, the scale's maximum.
    blur_mm, bloom_mm, rim : float
        Tissue-and-metal point spread sigma, extra sigma for metal, overshoot amplitude.
    streak_hu, streak_width_mm, noise_hu : float
        Streak depth and width, Gaussian noise sigma.
    motion : (float, float) or None
        ``(max rotation deg, max shift mm)`` of the family's patient motion
        (:func:`scanner_motion`); None: the caller's.
    cannulation_mm : float
        Central channel of each implant (0 = solid).
    dicom : bool
        The scan reaches the evaluation as a DICOM series with its true slice positions
        (:func:`or_assist.sim.ct_series.postop_via_dicom`; a sheared model is then a
        gantry-tilted series that the reader resamples); the benchmark honours it.
    """

    pixel_mm: float = 0.8
    slice_mm: float = 1.0
    tilt_deg: float = 0.0
    sheared: bool = False
    axes: str = "xyz"
    frame_shift_mm: tuple = (0.0, 0.0, 0.0)
    fov_mm: tuple = (300.0, 250.0, 170.0)
    metal_hu: float = 12000.0
    hu_max: float = 3071.0
    blur_mm: float = 0.6
    bloom_mm: float = 0.0
    rim: float = 0.0
    streak_hu: float = 0.0
    streak_width_mm: float = 2.0
    noise_hu: float = 10.0
    motion: tuple | None = None
    cannulation_mm: float = 0.0
    dicom: bool = False


#: Named scanner families (:class:`ScannerModel` fields).
SCANNER_FAMILIES: dict[str, dict] = {
    "thin_0.6": {"pixel_mm": 0.78, "slice_mm": 0.6},
    "fine_0.5": {"pixel_mm": 0.5, "slice_mm": 1.0, "fov_mm": (256.0, 230.0, 160.0)},
    "thick_3": {"pixel_mm": 0.9, "slice_mm": 3.0},
    "thick_3_tilt_20": {"pixel_mm": 0.8, "slice_mm": 3.0, "tilt_deg": 20.0},
    "tilt_30": {"pixel_mm": 0.7, "slice_mm": 1.5, "tilt_deg": -30.0},
    "sheared_tilt_15": {"pixel_mm": 0.8, "slice_mm": 2.0, "tilt_deg": 15.0, "sheared": True},
    "flipped": {"pixel_mm": 0.7, "slice_mm": 1.25, "axes": "y-x-z", "frame_shift_mm": (40.0, -250.0, 900.0)},
    "bloom": {"pixel_mm": 0.7, "slice_mm": 1.0, "bloom_mm": 0.8, "rim": 0.35},
    "streaks": {"pixel_mm": 0.7, "slice_mm": 1.0, "streak_hu": 500.0, "bloom_mm": 0.3, "rim": 0.15},
    "motion_15_50": {"pixel_mm": 0.8, "slice_mm": 1.5, "motion": (15.0, 50.0)},
    "cannulated_1mm": {"pixel_mm": 0.7, "slice_mm": 1.0, "cannulation_mm": 3.3, "metal_hu": 3000.0, "hu_max": 4095.0,
                       "bloom_mm": 0.4, "rim": 0.2},
    "mixed": {"pixel_mm": 0.8, "slice_mm": 3.0, "tilt_deg": 15.0, "bloom_mm": 0.6, "rim": 0.25,
              "streak_hu": 400.0, "motion": (12.0, 40.0), "axes": "x-y-z", "frame_shift_mm": (0.0, 0.0, -500.0)},
    "tilted_dicom_15": {"pixel_mm": 0.8, "slice_mm": 2.0, "tilt_deg": 15.0, "sheared": True, "dicom": True},
    "tilted_dicom_25": {"pixel_mm": 0.75, "slice_mm": 3.0, "tilt_deg": -25.0, "sheared": True, "dicom": True,
                        "axes": "-x-yz", "motion": (10.0, 30.0)},
}


def scanner_family(name: str, **overrides) -> ScannerModel:
    """The :class:`ScannerModel` of a named family (:data:`SCANNER_FAMILIES`), fields overridable.

    Raises
    ------
    InputError
        Unknown family name or field.
    """
    if name not in SCANNER_FAMILIES:
        raise InputError(f"unknown scanner family {name!r}; known: {', '.join(SCANNER_FAMILIES)}", "family")
    try:
        return replace(ScannerModel(**SCANNER_FAMILIES[name]), **overrides)
    except TypeError as exc:
        raise InputError(f"bad scanner field: {exc}", "overrides") from None


def scanner_motion(model: ScannerModel, rng: np.random.Generator, centre_mm: Sequence[float]) -> Pose | None:
    """The family's patient motion: rotation 2/3-1 x its maximum about a random axis, shift likewise.

    Returns None when the model has no motion of its own.
    """
    if model.motion is None:
        return None
    rot_max, shift_max = model.motion
    u, v = rng.normal(size=3), rng.normal(size=3)
    angle, shift = rng.uniform(2 / 3, 1.0) * rot_max, rng.uniform(2 / 3, 1.0) * shift_max
    r = rotation_about_axis(u / np.linalg.norm(u), math.radians(angle))
    c = np.asarray(centre_mm, dtype=np.float64)
    return Pose.from_rotation_translation(r, c + shift * v / np.linalg.norm(v) - r @ c)


def _axes_matrix(axes: str) -> np.ndarray:
    cols, sign = [], 1.0
    for ch in axes:
        if ch == "-":
            sign = -1.0
            continue
        if ch not in "xyz":
            raise InputError(f"expected signed LPS letters such as '-x-yz', got {axes!r}", "axes")
        cols.append(sign * np.eye(3)["xyz".index(ch)])
        sign = 1.0
    m = np.column_stack(cols) if len(cols) == 3 else np.zeros((3, 3))
    if abs(abs(np.linalg.det(m)) - 1.0) > 1e-9:
        raise InputError(f"must name each of x, y, z once, got {axes!r}", "axes")
    return m


def _affine(matrix: np.ndarray, translation: np.ndarray) -> sitk.AffineTransform:
    tx = sitk.AffineTransform(3)
    tx.SetMatrix(tuple(float(v) for v in np.asarray(matrix).ravel()))
    tx.SetTranslation(tuple(float(v) for v in translation))
    return tx


def _reference(origin, spacing, direction, size) -> sitk.Image:
    ref = sitk.Image([int(v) for v in size], sitk.sitkFloat32)
    ref.SetOrigin(tuple(float(v) for v in origin))
    ref.SetSpacing(tuple(float(v) for v in spacing))
    ref.SetDirection(tuple(float(v) for v in np.asarray(direction).ravel()))
    return ref


def _slice_average(ref: sitk.Image, image: sitk.Image, tx: sitk.Transform, sub: int, default: float,
                   interp=sitk.sitkLinear) -> np.ndarray:
    """Resample on ``sub`` sub-slices per slice of ``ref`` (evenly over the slice) and average them (box profile)."""
    spacing = np.array(ref.GetSpacing())
    normal = np.array(ref.GetDirection()).reshape(3, 3)[:, 2]
    acc = None
    for m in range(sub):
        off = ((m + 0.5) / sub - 0.5) * spacing[2]
        r = sitk.Image(ref)
        r.SetOrigin(tuple(np.array(ref.GetOrigin()) + off * normal))
        a = sitk.GetArrayFromImage(sitk.Resample(image, r, tx, interp, default, sitk.sitkFloat32))
        acc = a if acc is None else acc + a
    return acc / sub


def _metal_psf(frac: np.ndarray, spacing_zyx: np.ndarray, model: ScannerModel) -> np.ndarray:
    """Blur the metal fraction with the metal's wider point spread, the kernel's overshoot inside and a dark rim outside.

    The rim is the excess of a 2.5 x wider Gaussian over the point spread, where the
    bloomed metal has faded below 0.1 (so the metal itself keeps its bloomed size).
    """
    s1 = math.hypot(model.blur_mm, model.bloom_mm)
    sig = np.array([s1, s1, s1]) / spacing_zyx
    g1 = ndimage.gaussian_filter(frac, sig, mode="constant")
    if model.rim <= 0:
        return g1
    g0 = ndimage.gaussian_filter(frac, np.maximum(model.blur_mm / spacing_zyx, 1e-3), mode="constant")
    g2 = ndimage.gaussian_filter(frac, 2.5 * sig, mode="constant")
    outside = np.clip(1.0 - g1 / 0.1, 0.0, 1.0)
    return g1 + model.rim * np.maximum(g0 - g1, 0.0) - model.rim * outside * np.maximum(g2 - g1, 0.0)


def _streak_bands(hu: np.ndarray, spacing_mm: np.ndarray, depth_hu: float, width_mm: float,
                  metal_hu: float = 2500.0) -> np.ndarray:
    """Per slice, a dark band between every two metal objects and bright bands beyond them."""
    out = np.zeros_like(hu)
    sx, sy = float(spacing_mm[0]), float(spacing_mm[1])
    jj, ii = np.meshgrid(np.arange(hu.shape[1]) * sy, np.arange(hu.shape[2]) * sx, indexing="ij")
    min_px = max(4, int(4.0 / (sx * sy)))
    for k in np.flatnonzero((hu > metal_hu).reshape(hu.shape[0], -1).any(axis=1)):
        lab, n = ndimage.label(hu[k] > metal_hu)
        if n < 2:
            continue
        sizes = ndimage.sum_labels(np.ones_like(lab), lab, np.arange(1, n + 1))
        keep = [i + 1 for i in np.flatnonzero(sizes >= min_px)]
        cents = [np.array(c) * [sy, sx] for c in ndimage.center_of_mass(np.ones_like(lab), lab, keep)]
        for a in range(len(cents)):
            for b in range(a + 1, len(cents)):
                p, q = cents[a], cents[b]
                d = q - p
                length = float(np.linalg.norm(d))
                if length < 3.0:
                    continue
                u = d / length
                t = (jj - p[0]) * u[0] + (ii - p[1]) * u[1]
                perp = np.abs((jj - p[0]) * u[1] - (ii - p[1]) * u[0])
                across = np.exp(-0.5 * (perp / width_mm) ** 2)
                inside = (t > 0) & (t < length)
                beyond = np.where(t <= 0, -t, t - length)
                out[k] += across * np.where(inside, -depth_hu, 0.5 * depth_hu * np.exp(-beyond / 40.0))
    return out


def scanner_postop_ct(preop: CTVolume, placed: Sequence[Implant], T_postop_from_preop: Pose,
                      model: ScannerModel, *, centre_mm: Sequence[float] | None = None, seed: int = 0,
                      supersample: int | None = None) -> tuple[CTVolume, Pose]:
    """A post-op CT on a scanner's own grid, with its blooming, streaks and noise (module doc).

    Parameters
    ----------
    preop : CTVolume
        The anatomy (HU), e.g. the whole pre-op CT; the field of view takes what it covers.
    placed : sequence of Implant
        The implants as placed, pre-op frame (LPS mm); moved with the patient.
    T_postop_from_preop : Pose
        The patient's motion (pre-op point -> post-op scanner point, before ``frame_shift_mm``).
    model : ScannerModel
        The scanner (:func:`scanner_family`).
    centre_mm : (3,) array_like, optional
        Pre-op point the field of view is centred on; default: the implants' apexes' mean.
    seed : int
        Noise.
    supersample : int, optional
        Sub-voxel points per axis for the metal fraction; default from the voxel size.

    Returns
    -------
    (CTVolume, Pose)
        The post-op CT (``source`` names the scanner) and the true ``T_postop_from_preop``
        including the frame shift (for a sheared series: the map at the field's centre slice).

    Raises
    ------
    InputError
        No implants and no ``centre_mm``; an implant outside the field of view; bad axes.
    """
    if not isinstance(T_postop_from_preop, Pose):
        raise InputError(f"expected a Pose, got {type(T_postop_from_preop).__name__}", "T_postop_from_preop")
    if centre_mm is None:
        if not placed:
            raise InputError("give centre_mm when there are no implants", "centre_mm")
        centre_mm = np.mean([i.apex_lps_mm for i in placed], axis=0)
    tilt = rotation_about_axis([1.0, 0.0, 0.0], math.radians(model.tilt_deg))
    direction = tilt @ _axes_matrix(model.axes)
    spacing = np.array([model.pixel_mm, model.pixel_mm, model.slice_mm], dtype=np.float64)
    fov = np.array(model.fov_mm, dtype=np.float64)
    size = np.maximum(np.round(fov / spacing).astype(int), 1)
    size[:2] = np.minimum(size[:2], 512)
    c_post = T_postop_from_preop.apply(np.asarray(centre_mm, dtype=np.float64))
    origin = c_post - direction @ (0.5 * (size - 1) * spacing)
    # declared grid G (orthonormal) -> true sample positions D(q) (sheared: slices step along LPS z)
    declared = direction * spacing[None, :]
    true_cols = declared.copy()
    if model.sheared:
        true_cols[:, 2] = np.array([0.0, 0.0, math.copysign(1.0, direction[2, 2])]) * spacing[2]
    shear = true_cols @ np.linalg.inv(declared)             # D(q) = o + shear (q - o)
    mid = origin + direction @ (0.5 * (size - 1) * spacing)  # the shear is 0 here
    D_m, D_t = shear, mid - shear @ mid
    pre_from_post = T_postop_from_preop.inverse()
    # anatomy: q -> T^-1 (D q)
    m = pre_from_post.rotation @ D_m
    t = pre_from_post.rotation @ D_t + pre_from_post.translation_mm
    ref = _reference(origin, spacing, direction, size)
    sub = max(1, int(math.ceil(model.slice_mm / 1.0)))
    hu = _slice_average(ref, preop.to_sitk(), _affine(m, t), sub, -1000.0)
    tissue_blur = np.array([1e-3, model.blur_mm / spacing[1], model.blur_mm / spacing[0]])
    hu = ndimage.gaussian_filter(hu, tissue_blur)
    if placed:
        hu = _burn_metal(hu, placed, T_postop_from_preop, model, origin, spacing, direction, size,
                         np.linalg.inv(D_m), D_t, supersample)
    if model.streak_hu > 0:
        hu = hu + _streak_bands(np.minimum(hu, model.hu_max), spacing, model.streak_hu, model.streak_width_mm)
    rng = np.random.default_rng(seed)
    if model.noise_hu > 0:
        hu = hu + rng.normal(0.0, model.noise_hu, hu.shape).astype(np.float32)
    hu = np.clip(hu, -1024.0, model.hu_max).astype(np.float32)
    shift = np.asarray(model.frame_shift_mm, dtype=np.float64)
    truth = Pose.from_rotation_translation(np.eye(3), shift).compose(T_postop_from_preop)
    name = f"synthetic post-op CT ({model.pixel_mm:g} x {model.pixel_mm:g} x {model.slice_mm:g} mm" \
           + (f", tilt {model.tilt_deg:g} deg" if model.tilt_deg else "") + (", sheared" if model.sheared else "") + ")"
    return CTVolume(hu, origin + shift, spacing, direction, source=name), truth


def _burn_metal(hu, placed, T_post_from_pre, model, origin, spacing, direction, size, D_inv, D_t, supersample):
    """Metal fraction on sub-slices of a box around the implants, with the metal PSF, blended into ``hu``."""
    from or_assist.core.instruments import GuidePin

    to_declared = lambda p: (np.asarray(p) - D_t) @ D_inv.T   # noqa: E731  (inverse of D)
    meshes = []
    for imp in placed:
        v, f = implant_mesh(imp)
        meshes.append((to_declared(T_post_from_pre.apply(v)), f))
    channels = []
    if model.cannulation_mm > 0:
        for imp in placed:
            a = imp.axis_unit
            ends = to_declared(T_post_from_pre.apply(np.vstack([imp.apex_lps_mm + a, imp.entry_lps_mm - a])))
            channels.append(GuidePin(ends[0], ends[1], diameter_mm=float(model.cannulation_mm), id=f"ch {imp.id}"))
    pts = np.vstack([mv for mv, _ in meshes])
    idx = (pts - origin) @ direction / spacing                  # (i, j, k)
    margin = np.ceil(6.0 * math.hypot(model.blur_mm, model.bloom_mm) / spacing).astype(int) + 3
    lo = np.floor(idx.min(0)).astype(int) - margin
    hi = np.ceil(idx.max(0)).astype(int) + margin
    if np.any(lo < 0) or np.any(hi > size - 1):
        raise InputError(f"an implant lies outside the scanner's field of view (voxels {lo.tolist()} to "
                         f"{hi.tolist()} of {size.tolist()}); widen fov_mm", "placed")
    sub = max(1, int(math.ceil(model.slice_mm / 0.3)))
    sub_spacing = np.array([spacing[0], spacing[1], spacing[2] / sub])
    box_origin = origin + direction @ (lo * spacing) - direction[:, 2] * (0.5 - 0.5 / sub) * spacing[2]
    n = hi - lo + 1
    grid = CTVolume(np.zeros((int(n[2]) * sub, int(n[1]), int(n[0])), np.float32), box_origin, sub_spacing,
                    direction)
    ss = supersample or int(np.clip(round(max(sub_spacing) / 0.3), 2, 6))
    frac = implant_fraction_volume(grid, meshes, ss)
    if channels:
        frac = np.clip(frac - implant_fraction_volume(grid, channels, ss), 0.0, 1.0)
    frac = _metal_psf(frac, sub_spacing[::-1], model)
    frac = frac.reshape(int(n[2]), sub, int(n[1]), int(n[0])).mean(axis=1)
    box = np.s_[lo[2]:hi[2] + 1, lo[1]:hi[1] + 1, lo[0]:hi[0] + 1]
    tissue = hu[box]
    hu = hu.copy()
    hu[box] = tissue + frac * (np.float32(model.metal_hu) - tissue)
    return hu
