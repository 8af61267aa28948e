"""Masks and polarity of a fluoroscopy frame: burnt-in text, metal and pins, bone dark/bright.

* :func:`detect_text_mask`: overlays. Outside the field every pixel above the black
  level is an overlay (text, logos, scales); inside it, thin saturated strokes that a
  morphological top-hat (bright) or black-hat (dark) isolates, kept when their
  connected pieces are glyph-sized, then dilated to cover anti-aliased fringes.
* :func:`metal_mask`: what must not drive an intensity metric: saturated dark
  (most attenuating) regions and thin straight dark lines (guide pins, wires) found by a
  top-hat on the darkness at a scale where a pin is a few pixels wide, kept when
  elongated.
* :func:`detect_polarity`: bone dark or bone bright, from the **noise**: quantum noise
  in a log image grows where fewer photons arrive, i.e. where attenuation is high, so
  in a bone-dark image the dark pixels are the noisy ones and in a bone-bright image
  the bright ones (the rule is documented on the function).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from or_assist.errors import InputError
from or_assist.video.preprocess_fov import FieldOfView, detect_field_of_view
from or_assist.video.preprocess_frame import as_gray_uint8

__all__ = ["POLARITIES", "detect_text_mask", "metal_mask", "detect_polarity", "polarity_score"]

POLARITIES = ("bone-dark", "bone-bright", "unknown")

_POLARITY_WORK_PX = 384      # the noise analysis runs on the field binned to about this size
_POLARITY_MIN_CORR = 0.25    # |rank correlation| below which the noise cue is undecided
_SATURATION_MARGIN = 0.02    # fallback cue: share of white minus black pixels in the field


def _check_fov(fov, name: str = "fov") -> None:
    if fov is not None and not isinstance(fov, FieldOfView):
        raise InputError(f"must be None or a FieldOfView, got {type(fov).__name__}", name)


def _disc(size_px: int) -> np.ndarray:
    size_px = max(3, int(size_px) | 1)
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size_px, size_px))


# --------------------------------------------------------------------------- text


def detect_text_mask(frame: np.ndarray, fov: FieldOfView | None = None, *, min_level: int = 200,
                     min_contrast: int = 60, stroke_px: float | None = None,
                     dilate_px: int | None = None) -> np.ndarray:
    """Burnt-in text and graphics of a frame (module docstring).

    Parameters
    ----------
    frame : (H, W) or (H, W, 3) ndarray
        The frame (uint8, uint16 or float; grey or BGR).
    fov : FieldOfView, optional
        The field in this frame's pixels. Without it the whole frame is searched for
        glyph strokes only (no outside rule).
    min_level : int
        Bright strokes are at least this grey level, dark strokes at most ``255 - min_level``.
    min_contrast : int
        Grey levels a stroke stands out from its surroundings (top-/black-hat).
    stroke_px : float, optional
        Largest stroke width in pixels (default: frame height / 270, at least 2).
    dilate_px : int, optional
        Dilation of the result (default: frame height / 360, at least 2).

    Returns
    -------
    (H, W) bool ndarray
        True on overlay pixels.
    """
    gray = as_gray_uint8(frame, "frame")
    _check_fov(fov)
    h, w = gray.shape
    stroke = max(2.0, h / 270.0) if stroke_px is None else float(stroke_px)
    dil = max(2, int(round(h / 360.0))) if dilate_px is None else int(dilate_px)
    text = np.zeros((h, w), np.uint8)
    if fov is not None:
        field = fov.mask((h, w), erode_px=-1.5)
        outside = gray[~field]
        if outside.size:
            black = float(np.median(outside[:: max(1, outside.size // 65536)]))
            text[(~field) & (gray > black + 16)] = 1
        u, v, cw, ch = fov.crop_box((h, w), margin_px=dil + 2)
    else:
        u, v, cw, ch = 0, 0, w, h
    roi = gray[v:v + ch, u:u + cw]
    text[v:v + ch, u:u + cw] |= _glyph_strokes(roi, min_level, min_contrast, stroke, h)
    if dil > 0:
        text = cv2.dilate(text, _disc(2 * dil + 1))
    return text.astype(bool)


def _glyph_strokes(gray: np.ndarray, min_level: int, min_contrast: int, stroke_px: float,
                   frame_h: int) -> np.ndarray:
    """Thin saturated strokes in glyph-sized connected pieces, uint8 0/1."""
    kernel = _disc(2 * int(math.ceil(stroke_px)) + 3)
    top = cv2.morphologyEx(gray, cv2.MORPH_TOPHAT, kernel)
    cand = ((top >= min_contrast) & (gray >= min_level)).astype(np.uint8)
    black = cv2.morphologyEx(gray, cv2.MORPH_BLACKHAT, kernel)
    cand |= ((black >= min_contrast) & (gray <= 255 - min_level)).astype(np.uint8)
    if not cand.any():
        return cand
    n, labels, stats, _ = cv2.connectedComponentsWithStats(cand, connectivity=8)
    glyph_max = max(6, int(0.06 * frame_h))
    size = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT])
    keep = (size <= glyph_max) & (stats[:, cv2.CC_STAT_AREA] >= 2)
    keep[0] = False
    return keep[labels].astype(np.uint8)


# --------------------------------------------------------------------------- metal


def metal_mask(image_or_frame: np.ndarray, fov: FieldOfView | None = None, *,
               polarity: str = "bone-dark", saturation_level: int = 6,
               pin_width_px: float | None = None, line_contrast: float = 40.0,
               dilate_px: int = 2) -> np.ndarray:
    """Metal, instruments and saturated dense regions that an intensity metric must ignore.

    Parameters
    ----------
    image_or_frame : (H, W) ndarray
        Either a video frame (uint8/uint16, or float 0-1/0-255 with ``polarity``
        saying which way bone goes), or -- when ``polarity='attenuation'`` -- a float
        attenuation-like image (larger = more attenuating, any range).
    fov : FieldOfView, optional
        Only pixels inside it are examined (default: the whole image).
    polarity : {'bone-dark', 'bone-bright', 'attenuation'}
    saturation_level : int
        Grey levels (of 255) from the dense end that count as saturated (default 6).
    pin_width_px : float, optional
        Expected pin width in pixels (e.g. 3.2 mm x magnification / pixel spacing);
        default 1.5 % of the field's (or image's) larger side.
    line_contrast : float
        Grey levels a pin must stand out from its surroundings (default 40).
    dilate_px : int
        Dilation of the result (default 2).

    Returns
    -------
    (H, W) bool ndarray
        True on metal / saturated pixels.
    """
    if polarity not in ("bone-dark", "bone-bright", "attenuation"):
        raise InputError(f"must be 'bone-dark', 'bone-bright' or 'attenuation', got {polarity!r}", "polarity")
    _check_fov(fov)
    if polarity == "attenuation":
        img = np.asarray(image_or_frame)
        if not isinstance(image_or_frame, np.ndarray) or img.ndim != 2 or not np.issubdtype(img.dtype, np.number):
            raise InputError(f"must be a numeric (H, W) array, got {getattr(img, 'shape', None)}", "image_or_frame")
        f = img.astype(np.float32, copy=False)
        sel = f if fov is None else f[fov.mask(f.shape, 0.0)]
        lo, hi = (float(np.min(sel)), float(np.max(sel))) if sel.size else (0.0, 1.0)
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise InputError("contains NaN or inf", "image_or_frame")
        dense = cv2.convertScaleAbs(f, alpha=255.0 / max(hi - lo, 1e-12), beta=-lo * 255.0 / max(hi - lo, 1e-12))
    else:
        gray = as_gray_uint8(image_or_frame, "image_or_frame")
        dense = 255 - gray if polarity == "bone-dark" else gray
    return _metal(dense, fov, saturation_level, pin_width_px, line_contrast, dilate_px)


def _metal(dense: np.ndarray, fov, saturation_level: int, pin_width_px, line_contrast: float,
           dilate_px: int) -> np.ndarray:
    """``dense``: uint8, 255 = most attenuating. Returns bool (H, W)."""
    h, w = dense.shape
    inside = np.ones((h, w), bool) if fov is None else fov.mask((h, w), erode_px=0.0)
    out = ((dense >= 255 - saturation_level) & inside).astype(np.uint8)
    if pin_width_px is None:
        side = max(w, h) if fov is None else max(fov.box[2] - fov.box[0], fov.box[3] - fov.box[1])
        pin_width_px = 0.015 * side
    f = max(1, int(pin_width_px // 3))          # work where a pin is about 3 px wide
    small = cv2.resize(dense, (w // f, h // f), interpolation=cv2.INTER_AREA) if f > 1 else dense
    top = cv2.morphologyEx(small, cv2.MORPH_TOPHAT, _disc(9))
    cand = (top >= line_contrast).astype(np.uint8)
    if f > 1:
        small_inside = cv2.resize(inside.view(np.uint8), (small.shape[1], small.shape[0]),
                                  interpolation=cv2.INTER_NEAREST)
    else:
        small_inside = inside.view(np.uint8)
    cand &= small_inside
    lines = _elongated(cand, min_length_px=max(12.0, 8.0 * pin_width_px / f))
    if lines.any():
        if f > 1:
            lines = cv2.resize(lines, (w, h), interpolation=cv2.INTER_NEAREST)
            if lines.shape != (h, w):
                lines = lines[:h, :w]
        out[: lines.shape[0], : lines.shape[1]] |= lines
    if dilate_px > 0:
        out = cv2.dilate(out, _disc(2 * dilate_px + 1))
    return out.astype(bool)


def _elongated(cand: np.ndarray, min_length_px: float, min_aspect: float = 4.0,
               max_components: int = 32) -> np.ndarray:
    """Connected pieces of ``cand`` that are long and thin (straight lines), uint8 0/1."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(cand, connectivity=8)
    if n < 2:
        return np.zeros_like(cand)
    diag = np.hypot(stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_HEIGHT])
    order = np.argsort(-diag)[:max_components]
    keep = np.zeros(n, bool)
    for j in order:
        if diag[j] < min_length_px:
            break
        k = j + 1
        x, y, bw, bh = stats[k, :4]
        vv, uu = np.nonzero(labels[y:y + bh, x:x + bw] == k)
        pts = np.stack([uu, vv], axis=1).astype(np.float32)
        (_, _), (a, b), _ = cv2.minAreaRect(pts)
        length, width = max(a, b), max(1.0, min(a, b))
        if length >= min_length_px and length / width >= min_aspect:
            keep[k] = True
    return keep[labels].astype(np.uint8)


# --------------------------------------------------------------------------- polarity


def polarity_score(frame: np.ndarray, fov: FieldOfView | None = None) -> float:
    """Rank correlation (-1..1) between local brightness and local noise inside the field.

    Negative: the dark pixels are the noisy ones (bone dark); positive: bone bright;
    NaN when too few unsaturated pixels remain. See :func:`detect_polarity`.
    """
    gray = as_gray_uint8(frame, "frame")
    _check_fov(fov)
    if fov is None:
        fov = detect_field_of_view(gray)
    h, w = gray.shape
    u, v, cw, ch = fov.crop_box((h, w), margin_px=0)
    roi = gray[v:v + ch, u:u + cw]
    field = fov.mask((h, w), erode_px=8.0)[v:v + ch, u:u + cw].view(np.uint8)
    scale = min(1.0, _POLARITY_WORK_PX / max(cw, ch))
    if scale < 1.0:
        size = (max(8, int(cw * scale)), max(8, int(ch * scale)))
        roi = cv2.resize(roi, size, interpolation=cv2.INTER_AREA)
        field = cv2.resize(field, size, interpolation=cv2.INTER_NEAREST)
    g = roi.astype(np.float32)
    resid = g - cv2.GaussianBlur(g, (0, 0), 1.0)
    mean = cv2.GaussianBlur(g, (0, 0), 6.0)
    var = cv2.GaussianBlur(resid * resid, (0, 0), 6.0)
    unsaturated = cv2.erode(((roi > 3) & (roi < 252)).view(np.uint8), np.ones((9, 9), np.uint8))
    ok = (field > 0) & (unsaturated > 0) & (mean > 20) & (mean < 235)
    if np.count_nonzero(ok) < 200:
        return float("nan")
    a, b = mean[ok], np.log(var[ok] + 1e-3)
    ra = np.argsort(np.argsort(a)).astype(np.float64)
    rb = np.argsort(np.argsort(b)).astype(np.float64)
    return float(np.corrcoef(ra, rb)[0, 1])


def detect_polarity(frame: np.ndarray, fov: FieldOfView | None = None) -> str:
    """Is bone dark (the usual C-arm display) or bright (inverted) in this frame?

    The rule:

    1. **Noise** (primary). Quantum noise in a log-displayed X-ray image is larger
       where fewer photons arrive, i.e. where attenuation is high. Inside the field
       (binned to about 384 px, saturated pixels and their neighbours left out), the
       rank correlation between local brightness and local noise variance is
       negative in a bone-dark image and positive in a bone-bright one;
       ``|correlation| >= 0.25`` decides.
    2. **Direct exposure** (fallback, for noise-free images). The share of saturated
       white minus saturated black pixels in the field: air beside the patient clips
       white and metal clips black in a bone-dark image, the opposite when inverted;
       a margin of 2 % of the field decides.
    3. Otherwise ``'unknown'``.

    Parameters
    ----------
    frame : (H, W) or (H, W, 3) ndarray
    fov : FieldOfView, optional
        Detected when not given.

    Returns
    -------
    {'bone-dark', 'bone-bright', 'unknown'}
    """
    gray = as_gray_uint8(frame, "frame")
    _check_fov(fov)
    if fov is None:
        fov = detect_field_of_view(gray)
    rho = polarity_score(gray, fov)
    if math.isfinite(rho) and abs(rho) >= _POLARITY_MIN_CORR:
        return "bone-dark" if rho < 0 else "bone-bright"
    m = fov.mask(gray.shape, erode_px=8.0)
    vals = gray[m]
    if vals.size == 0:
        return "unknown"
    white = np.count_nonzero(vals >= 250) / vals.size
    black = np.count_nonzero(vals <= 5) / vals.size
    if white - black >= _SATURATION_MARGIN:
        return "bone-dark"
    if black - white >= _SATURATION_MARGIN:
        return "bone-bright"
    return "unknown"
