"""A fluoroscopy shot made ready for registration: attenuation-like image pyramid and masks.

The frame as the grabber delivers it (black surround, burnt-in text, bone dark or
bright) becomes an attenuation-like image (higher = more attenuating) with a mask of
the pixels registration may compare: inside the collimated field, away from its rim,
and neither saturated (burnt-in text, metal, air) nor near such pixels. The field's
bounding square is then resampled to a few square levels (e.g. 32, 64, 128 pixels), each
with its own :class:`~or_assist.core.geometry.CArmGeometry`, so DRRs rendered with that
geometry line up with the level's pixels.

The field, text and metal come from :func:`or_assist.video.preprocess.shot.preprocess_shot`
when that module is present; otherwise (and for plain arrays) from the simple rules of
:func:`field_and_exclusions` here.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from or_assist.core.geometry import CArmGeometry
from or_assist.core.validate import check_choice
from or_assist.core.vocabulary import POLARITY_SETTINGS
from or_assist.errors import InputError

__all__ = ["ShotLevel", "PreparedShot", "ShotProblem", "frame_to_unit", "field_and_exclusions",
           "prepare_shot", "scaled_geometry"]

_FIELD_THRESHOLD = 3.0 / 255.0     # the surround is black (video black level)
_SATURATION = 2.0 / 255.0          # within this of 0 or 1 a pixel is clipped
_RIM_FRACTION = 0.02               # erode the field by this share of its size
_EXCLUDE_DILATE_FRACTION = 0.006   # grow clipped regions by this share of the field size
_MIN_VALID_FRACTION = 0.25         # of the field's bounding square at the finest level
_MIN_CONTRAST = 0.01               # std of the valid pixels, unit intensity
_MIN_PIXEL_COVERAGE = 0.75         # share of a level pixel's area that must be valid


class ShotProblem(Exception):
    """The frame cannot be registered (blank, saturated, no field...); ``str`` says why."""


@dataclass(frozen=True, eq=False)
class ShotLevel:
    """One pyramid level.

    Attributes
    ----------
    image : (N, N) float32 ndarray
        Attenuation-like intensity (higher = more attenuating), arbitrary gain/offset.
    mask : (N, N) bool ndarray
        Pixels to compare.
    geometry : CArmGeometry
        Of these pixels (render DRRs with it).
    """

    image: np.ndarray
    mask: np.ndarray
    geometry: CArmGeometry


@dataclass(frozen=True, eq=False)
class PreparedShot:
    """A shot ready for registration.

    Attributes
    ----------
    levels : dict of int -> ShotLevel
        Keyed by image side in pixels.
    polarity : str
        ``bone-dark`` or ``bone-bright`` as applied.
    field_fraction : float
        Share of the frame inside the detected field.
    valid_fraction : float
        Share of the finest level's pixels in its mask.
    """

    levels: dict
    polarity: str
    field_fraction: float
    valid_fraction: float


def frame_to_unit(frame: np.ndarray) -> np.ndarray:
    """A grey frame (uint8, uint16 or float in [0, 1]; (H, W) or (H, W, 3)) as (H, W) float32 in [0, 1]."""
    a = np.asarray(frame)
    if a.ndim == 3 and a.shape[2] in (3, 4):
        a = a[..., :3].astype(np.float32).mean(axis=2).astype(a.dtype if a.dtype.kind == "f" else np.float32)
        if np.asarray(frame).dtype == np.uint8:
            a = a / 255.0
        elif np.asarray(frame).dtype == np.uint16:
            a = a / 65535.0
        return np.clip(a, 0, 1).astype(np.float32)
    if a.ndim != 2 or a.size == 0:
        raise InputError(f"must be a grey image (H, W), got shape {a.shape}", "frame")
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if a.dtype == np.uint16:
        return a.astype(np.float32) / 65535.0
    if a.dtype.kind == "f":
        out = a.astype(np.float32)
        if not np.all(np.isfinite(out)):
            raise InputError("contains NaN or inf", "frame")
        return np.clip(out, 0, 1)
    raise InputError(f"must be uint8, uint16 or float in [0, 1], got dtype {a.dtype}", "frame")


def field_and_exclusions(unit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The collimated field and the pixels to exclude in it, from the frame alone.

    The field is the convex hull of the largest non-black region (C-arm fields are
    circles or rectangles); excluded are clipped pixels (burnt-in text and air at 1,
    metal at 0), grown by a margin, and the field's rim.

    Parameters
    ----------
    unit : (H, W) float32 in [0, 1]

    Returns
    -------
    field : (H, W) bool
    valid : (H, W) bool
        Field pixels registration may use.
    """
    h, w = unit.shape
    lit = (unit > _FIELD_THRESHOLD).astype(np.uint8)
    k = max(3, int(round(min(h, w) * 0.01)) | 1)
    lit = cv2.morphologyEx(lit, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(lit, connectivity=8)
    field = np.zeros((h, w), np.uint8)
    if n > 1:
        big = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        pts = cv2.findNonZero((labels == big).astype(np.uint8))
        cv2.fillConvexPoly(field, cv2.convexHull(pts), 1)
    size = max(1.0, float(np.sqrt(field.sum())))
    rim = max(1, int(round(_RIM_FRACTION * size)))
    inner = cv2.erode(field, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * rim + 1, 2 * rim + 1)))
    clipped = ((unit <= _SATURATION) | (unit >= 1.0 - _SATURATION)).astype(np.uint8)
    grow = max(1, int(round(_EXCLUDE_DILATE_FRACTION * size)))
    clipped = cv2.dilate(clipped, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    return field.astype(bool), inner.astype(bool) & ~clipped.astype(bool)


def scaled_geometry(geometry: CArmGeometry, u_min: int, v_min: int, side_px: int, size_px: int) -> CArmGeometry:
    """Geometry of the square ``[v_min:v_min+side, u_min:u_min+side]`` resampled to ``size_px``.

    Pixel centres stay consistent with area resampling: ``u_new = (u_old - u_min + 0.5) *
    size / side - 0.5``.
    """
    return geometry.cropped(u_min, v_min, side_px, side_px).resampled(size_px, size_px)


def _square_crop(a: np.ndarray, u_min: int, v_min: int, side: int) -> np.ndarray:
    h, w = a.shape
    out = np.zeros((side, side), a.dtype)
    u0, v0 = max(u_min, 0), max(v_min, 0)
    u1, v1 = min(u_min + side, w), min(v_min + side, h)
    out[v0 - v_min:v1 - v_min, u0 - u_min:u1 - u_min] = a[v0:v1, u0:u1]
    return out


def _preprocessed(frame, geometry: CArmGeometry, polarity: str):
    """``(attenuation, field, valid, geometry, polarity)`` from the video preprocessing, or
    None when :mod:`or_assist.video.preprocess.shot` is not available."""
    try:
        from or_assist.video.preprocess.shot import PreprocessSettings, preprocess_shot
    except ImportError:  # pragma: no cover - the fallback is tested through valid=...
        return None
    try:
        pre = preprocess_shot(frame, geometry, PreprocessSettings(polarity=polarity, normalise=False))
    except InputError as exc:  # blank, saturated, colour, no field, wrong size: a failed shot
        raise ShotProblem(str(exc)) from None
    field = pre.fov.mask_u8(pre.mask.shape, erode_px=0.0).astype(bool)
    return pre.image.astype(np.float32), field, pre.mask, pre.geometry, pre.polarity


def prepare_shot(frame: np.ndarray, geometry: CArmGeometry, polarity: str = "bone-dark",
                 sizes_px: tuple[int, ...] = (32, 64, 128), valid: np.ndarray | None = None) -> PreparedShot:
    """Turn a frame into a registration pyramid (module doc).

    Parameters
    ----------
    frame : (H, W) array
        The frame (uint8, uint16 or float in [0, 1]); its size must be ``geometry``'s.
    geometry : CArmGeometry
        Of the frame's pixels.
    polarity : {'bone-dark', 'bone-bright', 'auto'}
        ``auto`` needs :mod:`or_assist.video.preprocess.shot` (it detects the polarity).
    sizes_px : tuple of int
        Sides of the levels; each must divide the largest by a power of two.
    valid : (H, W) bool array, optional
        Pixels to use; given, the frame is used as it is (no video preprocessing) with
        only the field found here.

    Returns
    -------
    PreparedShot

    Raises
    ------
    InputError
        Bad arguments.
    ShotProblem
        A frame of the wrong size, without a field, blank, or mostly saturated.
    """
    if not isinstance(geometry, CArmGeometry):
        raise InputError(f"expected a CArmGeometry, got {type(geometry).__name__}", "geometry")
    check_choice(polarity, POLARITY_SETTINGS, "polarity")
    sizes = sorted({int(s) for s in sizes_px})
    top = sizes[-1]
    for s in sizes:
        if top % s or (top // s) & (top // s - 1):
            raise InputError(f"each size must divide the largest ({top}) by a power of two, got {sizes}", "sizes_px")
    unit = frame_to_unit(frame)
    h, w = unit.shape
    if (w, h) != geometry.image_size_px:
        raise ShotProblem(f"image size {w} x {h} does not match the geometry's {geometry.width} x "
                          f"{geometry.height}")
    pre = None
    if valid is None:
        pre = _preprocessed(frame, geometry, polarity)
    if pre is not None:
        att, field, valid, geom, polarity = pre
        unit_vals = att[valid]
    else:
        if polarity == "auto":
            raise InputError("'auto' needs or_assist.video.preprocess.shot", "polarity")
        field, found = field_and_exclusions(unit)
        if valid is None:
            valid = found
        else:
            valid = np.asarray(valid, dtype=bool)
            if valid.shape != unit.shape:
                raise InputError(f"must have the frame's shape {unit.shape}, got {valid.shape}", "valid")
            valid = valid & field
        att = 1.0 - unit if polarity == "bone-dark" else unit
        geom = geometry
        unit_vals = unit[valid]
    field_fraction = float(field.sum()) / (w * h)
    if field_fraction < 0.05:
        raise ShotProblem("no X-ray field found (the image is black or nearly so)")
    if unit_vals.size < 0.2 * field.sum() or unit_vals.size < 100:
        raise ShotProblem(f"the field is mostly saturated ({100 * (1 - unit_vals.size / max(field.sum(), 1)):.0f} % "
                          "of its pixels clipped or burnt in)")
    if float(unit_vals.std()) < _MIN_CONTRAST:
        raise ShotProblem(f"the field has no contrast (standard deviation {unit_vals.std():.4f} of full scale)")
    vs, us = np.nonzero(field)
    u_min, u_max, v_min, v_max = us.min(), us.max(), vs.min(), vs.max()
    side = int(max(u_max - u_min, v_max - v_min) + 1)
    u_min = int((u_min + u_max + 1) // 2 - side // 2)
    v_min = int((v_min + v_max + 1) // 2 - side // 2)
    weight = _square_crop(valid.astype(np.float32), u_min, v_min, side)
    num = _square_crop((att * valid).astype(np.float32), u_min, v_min, side)
    g_top = scaled_geometry(geom, u_min, v_min, side, top)
    levels = {}
    for s in sizes:
        n = cv2.resize(num, (s, s), interpolation=cv2.INTER_AREA)
        d = cv2.resize(weight, (s, s), interpolation=cv2.INTER_AREA)
        ok = d >= _MIN_PIXEL_COVERAGE
        img = np.where(ok, n / np.maximum(d, 1e-6), 0.0).astype(np.float32)
        if ok.any():  # fill invalid pixels with the mean so blurs and gradients stay local
            img[~ok] = float(img[ok].mean())
        levels[s] = ShotLevel(img, ok, g_top if s == top else g_top.downsampled(top // s))
    valid_fraction = float(levels[top].mask.mean())
    if valid_fraction < _MIN_VALID_FRACTION * (np.pi / 4 if field_fraction < 1 else 1):
        raise ShotProblem(f"too few usable pixels ({100 * valid_fraction:.0f} % of the field's square)")
    return PreparedShot(levels, polarity, field_fraction, valid_fraction)

