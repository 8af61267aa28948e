"""Masks of a fluoroscopy frame: burnt-in text, and metal and pins.

The frame's polarity (bone dark or bright) is :mod:`or_assist.video.preprocess.polarity`.

* :func:`detect_text_mask`: overlays. Outside the field every pixel above the black
  level is an overlay (text, logos, scales). Inside it (away from the field's edge),
  near-saturated strokes that a glyph-sized morphological top-hat (bright text) or
  black-hat (dark text) isolates, kept when their pieces are no taller than a glyph
  and line up into words (:func:`_text_lines`); the result is dilated to cover
  anti-aliased fringes. White text over white (clipped) anatomy is invisible and not
  found -- those pixels are clipped and left out of the metric anyway.
* :func:`metal_mask`: what must not drive an intensity metric: saturated dark
  (most attenuating) regions and thin straight dark lines (guide pins, wires) found by a
  top-hat on the darkness at a scale where a pin is a few pixels wide, kept when
  elongated.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from or_assist.core.validate import check_choice
from or_assist.core.vocabulary import POLARITIES as _BONE_POLARITIES
from or_assist.errors import InputError
from or_assist.video.preprocess.fov import FieldOfView, check_fov
from or_assist.video.preprocess.frame import as_gray_uint8

__all__ = ["detect_text_mask", "metal_mask"]

def _disc(size_px: int) -> np.ndarray:
    size_px = max(3, int(size_px) | 1)
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size_px, size_px))


# --------------------------------------------------------------------------- text


def detect_text_mask(frame: np.ndarray, fov: FieldOfView | None = None, *, min_level: int = 220,
                     min_contrast: int = 60, stroke_px: float | None = None,
                     dilate_px: int | None = None) -> np.ndarray:
    """Burnt-in text and graphics of a frame (module docstring).

    Parameters
    ----------
    frame : (H, W) or (H, W, 3) ndarray
        The frame (uint8, uint16 or float; grey or BGR).
    fov : FieldOfView, optional
        The field in this frame's pixels. Without it the whole frame is searched for
        glyph strokes only (no outside rule). Glyphs are looked for in words; text
        lower than about 0.8 % of the frame height is not found inside the field.
    min_level : int
        Bright strokes are at least this grey level, dark strokes at most ``255 - min_level``.
    min_contrast : int
        Grey levels a stroke stands out from its surroundings (top-/black-hat).
    stroke_px : float, optional
        Largest stroke width in pixels (default: frame height / 360, at least 2).
    dilate_px : int, optional
        Dilation of the result (default: frame height / 360, at least 2).

    Returns
    -------
    (H, W) bool ndarray
        True on overlay pixels.
    """
    gray = as_gray_uint8(frame, "frame")
    check_fov(fov)
    return _text_u8(gray, fov, min_level, min_contrast, stroke_px, dilate_px).view(bool)


def _text_u8(gray: np.ndarray, fov, min_level: int = 220, min_contrast: int = 60,
             stroke_px: float | None = None, dilate_px: int | None = None,
             masks: dict | None = None) -> np.ndarray:
    """:func:`detect_text_mask` as uint8 0/1; ``masks`` may hold the field masks already
    drawn, keyed by their erosion in pixels (``fov.mask_u8(shape, key)``)."""
    h, w = gray.shape
    stroke = max(2.0, h / 360.0) if stroke_px is None else float(stroke_px)
    dil = max(2, int(round(h / 360.0))) if dilate_px is None else int(dilate_px)
    masks = {} if masks is None else masks
    if fov is not None:
        field = masks.get(-1.5)
        if field is None:
            field = fov.mask_u8((h, w), erode_px=-1.5)
        ring = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
        ring_out = ring[np.concatenate([field[0], field[-1], field[:, 0], field[:, -1]]) == 0]
        black = float(np.median(ring_out)) if ring_out.size else float(np.percentile(gray[::4, ::4], 1))
        _, bright = cv2.threshold(gray, min(254.0, black + 16.0), 1, cv2.THRESH_BINARY)
        text = cv2.subtract(bright, field)               # bright and outside the field
        u, v, cw, ch = fov.crop_box((h, w), margin_px=dil + 2)
    else:
        text = np.zeros((h, w), np.uint8)
        u, v, cw, ch = 0, 0, w, h
    # not the field's edge, which image processing may leave as a bright or dark rim
    allowed = None
    if fov is not None:
        allowed = masks.get(8.0) if 2.0 + 2.0 * stroke <= 8.0 else None
        if allowed is None:
            allowed = fov.mask_u8((h, w), erode_px=max(8.0, 2.0 + 2.0 * stroke))
        allowed = allowed[v:v + ch, u:u + cw]
    strokes = _glyph_strokes(gray[v:v + ch, u:u + cw], min_level, min_contrast, stroke, h, allowed)
    if strokes is not None:
        roi = text[v:v + ch, u:u + cw]
        cv2.bitwise_or(roi, strokes, dst=roi)
    if dil > 0:
        text = cv2.dilate(text, np.ones((2 * dil + 1, 2 * dil + 1), np.uint8))
    return text


def _glyph_strokes(gray: np.ndarray, min_level: int, min_contrast: int, stroke_px: float,
                   frame_h: int, allowed: np.ndarray | None = None) -> np.ndarray:
    """Thin saturated strokes in glyph-sized connected pieces, uint8 0/1 (None: none).

    Large images are searched at half resolution after 2 x 2 maximum (bright strokes)
    and minimum (dark strokes) pooling, which keeps every stroke at least one pixel wide.
    """
    h, w = gray.shape
    f = 2 if min(h, w) >= 600 else 1
    glyph_max = max(6, int(0.06 * frame_h)) // f
    # a top-hat larger than a glyph keeps whole glyphs (bold text is solid at half resolution)
    k = max(2 * int(math.ceil(stroke_px / f)) + 3, int(0.04 * frame_h / f) | 1)
    kernel = np.ones((k, k), np.uint8)
    hs, ws = h // f, w // f
    if f > 1:
        crop = gray[: hs * f, : ws * f]
        hi = cv2.dilate(crop, np.ones((2, 2), np.uint8))[1::2, 1::2]
        lo = cv2.erode(crop, np.ones((2, 2), np.uint8))[1::2, 1::2]
        hi, lo = np.ascontiguousarray(hi), np.ascontiguousarray(lo)
    else:
        hi = lo = gray
    small_allowed = None if allowed is None else \
        np.ascontiguousarray(allowed[f // 2: hs * f: f, f // 2: ws * f: f])
    cand = np.zeros((hs, ws), np.uint8)
    # bright glyphs, then dark ones: apart, since the gaps between bright letters look like dark strokes
    for img, op, kind in ((hi, cv2.MORPH_TOPHAT, cv2.THRESH_BINARY), (lo, cv2.MORPH_BLACKHAT, cv2.THRESH_BINARY_INV)):
        _, a = cv2.threshold(cv2.morphologyEx(img, op, kernel), min_contrast - 1, 1, cv2.THRESH_BINARY)
        level = min_level - 1 if kind == cv2.THRESH_BINARY else 255 - min_level
        _, b = cv2.threshold(img, level, 1, kind)
        strokes = cv2.bitwise_and(a, b)
        if small_allowed is not None:
            strokes = cv2.bitwise_and(strokes, small_allowed)
        if cv2.countNonZero(strokes):
            strokes = _keep_pieces(strokes, lambda c: cv2.boundingRect(c)[3] <= glyph_max)
            cand = cv2.bitwise_or(cand, _text_lines(strokes, glyph_max, max(2, int(0.008 * frame_h / f))))
    if not cv2.countNonZero(cand):
        return None
    if f == 1:
        return cand
    out = np.zeros((h, w), np.uint8)
    out[: hs * f, : ws * f] = cv2.resize(cand, (ws * f, hs * f), interpolation=cv2.INTER_NEAREST)
    return out


def _text_lines(pieces: np.ndarray, glyph_max: int, min_height: int) -> np.ndarray:
    """Keep glyph pieces that line up into words: uint8 0/1 in, uint8 0/1 out.

    Pieces (no higher than ``glyph_max``) joined by a horizontal dilation (about a
    third of the glyph size) form a word when the word is a horizontal band (height
    from ``min_height`` to ``glyph_max``, at least 1.5 times wider than high) with at
    least 8 % stroke pixels in which strokes start often along the rows (on average
    once every 20 pixels of each row), as glyphs do and a lone bright line does not.
    Speckle noise in bright anatomy either stays in tiny bands or merges into tall
    irregular blobs, and is dropped.
    """
    if not cv2.countNonZero(pieces):
        return pieces
    gap = max(2, glyph_max // 3)
    words = cv2.dilate(pieces, np.ones((1, 2 * gap + 1), np.uint8))
    contours, _ = cv2.findContours(words, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    keep = []
    for c in contours:
        x, y, bw, bh = cv2.boundingRect(c)
        if not (min_height <= bh <= glyph_max and bw >= 1.5 * bh):
            continue
        box = pieces[y:y + bh, x:x + bw]
        if cv2.countNonZero(box) < 0.08 * bw * bh:
            continue
        starts = np.count_nonzero(box[:, 1:] > box[:, :-1]) + np.count_nonzero(box[:, 0])
        if starts >= 0.05 * bw * bh:        # strokes start often along the rows, as in glyphs
            keep.append(c)
    out = np.zeros_like(pieces)
    if keep:
        cv2.drawContours(out, keep, -1, 1, thickness=-1)
        out = cv2.bitwise_and(out, pieces)
    return out


def _keep_pieces(binary: np.ndarray, keep) -> np.ndarray:
    """The connected pieces (outer contours, holes filled) of ``binary`` for which ``keep(contour)``."""
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    out = np.zeros_like(binary)
    kept = [c for c in contours if keep(c)]
    if kept:
        cv2.drawContours(out, kept, -1, 1, thickness=-1)
    return out


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
    check_choice(polarity, _BONE_POLARITIES + ("attenuation",), "polarity")
    check_fov(fov)
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
    return _metal(dense, fov, saturation_level, pin_width_px, line_contrast, dilate_px).view(bool)


def _metal(dense: np.ndarray, fov, saturation_level: int, pin_width_px, line_contrast: float,
           dilate_px: int, inside: np.ndarray | None = None) -> np.ndarray:
    """``dense``: uint8, 255 = most attenuating; ``inside``: the field mask if drawn already.
    Returns uint8 0/1 (H, W)."""
    h, w = dense.shape
    if inside is None:
        inside = np.ones((h, w), np.uint8) if fov is None else fov.mask_u8((h, w), erode_px=0.0)
    _, out = cv2.threshold(dense, 254 - saturation_level, 1, cv2.THRESH_BINARY)
    out = cv2.bitwise_and(out, inside)
    if pin_width_px is None:
        side = max(w, h) if fov is None else max(fov.box[2] - fov.box[0], fov.box[3] - fov.box[1])
        pin_width_px = 0.015 * side
    f = max(1, int(pin_width_px // 3))          # work where a pin is about 3 px wide
    if f > 1:  # integer binning (OpenCV's fast path)
        small = cv2.resize(dense[: h // f * f, : w // f * f], (w // f, h // f), interpolation=cv2.INTER_AREA)
        small_inside = np.ascontiguousarray(inside[f // 2: h // f * f: f, f // 2: w // f * f: f])
    else:
        small, small_inside = dense, inside
    top = cv2.morphologyEx(small, cv2.MORPH_TOPHAT, _disc(9))
    _, cand = cv2.threshold(top, line_contrast - 1, 1, cv2.THRESH_BINARY)
    cand = cv2.bitwise_and(cand, cv2.erode(small_inside, np.ones((5, 5), np.uint8)))  # not the field's edge
    if cv2.countNonZero(cand):
        min_len = max(12.0, 8.0 * pin_width_px / f)
        lines = _keep_pieces(cand, lambda c: _is_line(c, min_len))
        if cv2.countNonZero(lines):
            if f > 1:
                lines = cv2.resize(lines, (w // f * f, h // f * f), interpolation=cv2.INTER_NEAREST)
            roi = out[: lines.shape[0], : lines.shape[1]]
            cv2.bitwise_or(roi, lines, dst=roi)
    if dilate_px > 0:
        out = cv2.dilate(out, np.ones((2 * dilate_px + 1, 2 * dilate_px + 1), np.uint8))
    return out


def _is_line(contour: np.ndarray, min_length_px: float, min_aspect: float = 4.0, max_bend_px: float = 2.0,
             max_bend_fraction: float = 0.03) -> bool:
    """A contour that is long, thin and straight (a wire or pin; not a curved cortex): its
    bend (:func:`_bend_px`) at most ``max_bend_px`` plus ``max_bend_fraction`` of its length."""
    x, y, bw, bh = cv2.boundingRect(contour)
    if math.hypot(bw, bh) < min_length_px:
        return False
    (_, _), (a, b), _ = cv2.minAreaRect(contour)
    length, width = max(a, b), max(1.0, min(a, b))
    if length < min_length_px or length / width < min_aspect:
        return False
    return _bend_px(contour) <= max_bend_px + max_bend_fraction * length


def _bend_px(contour: np.ndarray) -> float:
    """How far the contour's centre line strays from a straight line, in pixels.

    The contour's extent across its least-squares line, less its thickness (area over its
    extent along the line): a straight pin gives about 0, a cortical line curving by
    ``s`` px over its length (sagitta) about ``s``.
    """
    pts = contour.reshape(-1, 2).astype(np.float32)
    vx, vy, x0, y0 = cv2.fitLine(pts, cv2.DIST_L2, 0, 0.01, 0.01).ravel()
    across = (pts[:, 0] - x0) * vy - (pts[:, 1] - y0) * vx
    along = (pts[:, 0] - x0) * vx + (pts[:, 1] - y0) * vy
    thickness = float(cv2.contourArea(contour)) / max(1.0, float(np.ptp(along)))
    return float(np.ptp(across)) - thickness


