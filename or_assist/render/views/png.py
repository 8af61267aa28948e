"""Printable PNGs of the virtual view library: the view with the planned outlines.

Each named view becomes a grayscale picture (bone dark, as the C-arm shows it), enlarged
by an integer factor to at least ``min_side_px`` for printing, with

* every planned implant's outline (anti-aliased), its axis from entry to apex, a ring
  at the entry and a dot at the apex, and its id: the implant the view centres on in
  :data:`PLAN_COLOUR_BGR` (amber, drawn last so it is on top), the others in
  :data:`OTHER_COLOUR_BGR` (blue);
* a scale bar (mm at the isocentre) in the lower left of the image;
* a caption band below the image: the view's name and kind, the C-arm angles as the
  radiographer sets them (e.g. ``orbital RAO 90 deg, tilt 0 deg``), the implants and their
  colours, the plan's SHA-256 prefix, the C-arm distances and the image size.

A PNG pixel ``(x, y)`` shows image pixel ``((x + 0.5) / s - 0.5, (y + 0.5) / s - 0.5)``
with ``s`` from :func:`png_scale` (pixel centres are kept, as in
:meth:`CArmGeometry.downsampled`).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from or_assist.core.validate import is_integer
from or_assist.errors import InputError

__all__ = ["PLAN_COLOUR_BGR", "OTHER_COLOUR_BGR", "PNG_MIN_SIDE_PX", "png_scale", "image_to_png_px",
           "render_view_png"]

PLAN_COLOUR_BGR = (0, 190, 255)    # amber: the implant the view centres on
OTHER_COLOUR_BGR = (255, 160, 0)   # blue: the plan's other implants
PNG_MIN_SIDE_PX = 1024
_SHIFT = 4                          # fixed-point bits for sub-pixel drawing
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_BAR_CHOICES_MM = (100.0, 50.0, 20.0, 10.0, 5.0, 2.0)


def png_scale(image_shape: tuple[int, int], min_side_px: int = PNG_MIN_SIDE_PX) -> int:
    """The integer enlargement of an (H, W) image so that its larger side is >= ``min_side_px``."""
    if not is_integer(min_side_px) or min_side_px < 1:
        raise InputError(f"must be an integer >= 1, got {min_side_px!r}", "min_side_px")
    return max(1, math.ceil(min_side_px / max(image_shape)))


def image_to_png_px(uv_px: np.ndarray, scale: int) -> np.ndarray:
    """Image pixel positions (N, 2) or (2,) -> PNG pixel positions at enlargement ``scale``."""
    return (np.asarray(uv_px, dtype=np.float64) + 0.5) * scale - 0.5


def _fixed(uv: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(uv) * (1 << _SHIFT)).astype(np.int32)


def _text(img, text: str, org, scale: float, colour, thickness: int) -> None:
    """Text with a dark rim (the glyphs dilated), legible on any background."""
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, thickness)
    pad = 2 * thickness + 4
    x0, y0 = max(org[0] - pad, 0), max(org[1] - th - pad, 0)
    x1, y1 = min(org[0] + tw + pad, img.shape[1]), min(org[1] + base + pad, img.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    roi = img[y0:y1, x0:x1]
    mask = np.zeros(roi.shape[:2], np.uint8)
    cv2.putText(mask, text, (org[0] - x0, org[1] - y0), _FONT, scale, 255, thickness, cv2.LINE_AA)
    rim = cv2.dilate(mask, np.ones((3, 3), np.uint8), iterations=1)
    for m, c in ((rim, (0, 0, 0)), (mask, colour)):
        alpha = (m.astype(np.float32) / 255.0)[..., None]
        roi[:] = (roi * (1.0 - alpha) + np.asarray(c, np.float32) * alpha + 0.5).astype(np.uint8)


def _draw_outline(img, outline, colour, s: int, unit: float) -> None:
    """One implant: outline, axis, entry ring, apex dot and id; ``unit`` = PNG width / 1024."""
    line = max(1, int(round(2 * unit)))
    poly = _fixed(image_to_png_px(outline.silhouette_px, s)).reshape(-1, 1, 2)
    cv2.polylines(img, [poly], True, colour, line, cv2.LINE_AA, _SHIFT)
    entry = _fixed(image_to_png_px(outline.entry_px, s))
    apex = _fixed(image_to_png_px(outline.apex_px, s))
    cv2.line(img, tuple(entry), tuple(apex), colour, max(1, line // 2), cv2.LINE_AA, _SHIFT)
    cv2.circle(img, tuple(entry), int(round(5 * unit * (1 << _SHIFT))), colour, max(1, line // 2), cv2.LINE_AA,
               _SHIFT)
    cv2.circle(img, tuple(apex), int(round(3 * unit * (1 << _SHIFT))), colour, -1, cv2.LINE_AA, _SHIFT)
    x, y = image_to_png_px(outline.apex_px, s)
    _text(img, outline.id, (int(x + 12 * unit), int(y - 12 * unit)), 0.8 * unit, colour, line)


def _scale_bar(img, geometry, s: int, unit: float) -> None:
    h, w = img.shape[:2]
    mm_per_px = geometry.pixel_spacing_mm[0] * geometry.source_to_isocenter_mm / geometry.sid_mm / s
    bar_mm = next((b for b in _BAR_CHOICES_MM if b / mm_per_px <= 0.25 * w), _BAR_CHOICES_MM[-1])
    length = int(round(bar_mm / mm_per_px))
    x0, y0 = int(0.04 * w), int(h - 0.05 * h)
    white = (255, 255, 255)
    thick = max(1, int(round(4 * unit)))
    cv2.line(img, (x0, y0), (x0 + length, y0), (0, 0, 0), thick + 2, cv2.LINE_AA)
    cv2.line(img, (x0, y0), (x0 + length, y0), white, thick, cv2.LINE_AA)
    for x in (x0, x0 + length):
        cv2.line(img, (x, y0 - int(8 * unit)), (x, y0 + int(8 * unit)), white, max(1, thick // 2), cv2.LINE_AA)
    _text(img, f"{bar_mm:g} mm at isocentre", (x0, y0 - int(16 * unit)), 0.8 * unit, white,
          max(1, int(round(2 * unit))))


def render_view_png(library, index: int, *, min_side_px: int = PNG_MIN_SIDE_PX) -> np.ndarray:
    """The printable picture of one view (module doc).

    Parameters
    ----------
    library : ViewLibrary
    index : int
        Entry index (named views carry outlines; others are drawn without).
    min_side_px : int
        The image is enlarged by an integer factor to at least this larger side.

    Returns
    -------
    (H * s + caption, W * s, 3) uint8 ndarray
        BGR (for ``cv2.imwrite``).
    """
    if not is_integer(index) or not 0 <= index < len(library.entries):
        raise InputError(f"must be an entry index from 0 to {len(library.entries) - 1}, got {index!r}", "index")
    entry = library.entries[index]
    gray = library.display[index]
    s = png_scale(gray.shape, min_side_px)
    h, w = gray.shape
    big = cv2.resize(gray, (w * s, h * s), interpolation=cv2.INTER_CUBIC) if s > 1 else gray
    img = cv2.cvtColor(big, cv2.COLOR_GRAY2BGR)
    own = [o for o in entry.outlines if o.id == entry.implant_id]
    unit = img.shape[1] / 1024
    for outline in [o for o in entry.outlines if o.id != entry.implant_id] + own:
        _draw_outline(img, outline, PLAN_COLOUR_BGR if outline.id == entry.implant_id else OTHER_COLOUR_BGR, s,
                      unit)
    geom = library.geometry_of(index)
    _scale_bar(img, geom, s, unit)

    others = [o.id for o in entry.outlines if o.id != entry.implant_id]
    implants = f"planned outlines: {entry.implant_id} amber (this view)"
    if others:
        implants += f", {', '.join(others)} blue"
    g = library.geometry
    lines = [
        f"{entry.name}  ({entry.kind} view)",
        f"C-arm {entry.angles.radiographer_text()}  (patient {library.patient_position})",
        implants,
        f"plan {library.plan_sha256[:12]}  SID {g.sid_mm:g} mm  source-isocentre "
        f"{g.source_to_isocenter_mm:g} mm  {geom.width} x {geom.height} px  or_assist {library.or_assist_version}",
    ]
    text_scale = 0.55 * img.shape[1] / 1024
    line_h = int(math.ceil(32 * img.shape[1] / 1024))
    band = np.zeros((line_h * len(lines) + line_h // 2, img.shape[1], 3), np.uint8)
    thick = max(1, int(round(img.shape[1] / 1024)))
    usable = 0.96 * img.shape[1]
    widest = max(cv2.getTextSize(line, _FONT, text_scale, thick)[0][0] for line in lines)
    text_scale *= min(1.0, usable / widest)
    for k, line in enumerate(lines):
        colour = PLAN_COLOUR_BGR if k == 2 else (255, 255, 255)
        cv2.putText(band, line, (int(0.02 * img.shape[1]), line_h * (k + 1)), _FONT, text_scale, colour,
                    thick, cv2.LINE_AA)
    return np.vstack([img, band])
