"""Overlay drawing: plan, detected pin, deviation arrow and cue text on a shot.

Used by the OR display and the capture log alike, so both show the same picture. All
lines are anti-aliased (``cv2.LINE_AA``); line widths and text scale with the frame
height: capitals are :data:`TEXT_HEIGHT_FRACTION` (3.5 %) of the frame height, at least
:data:`MIN_TEXT_HEIGHT_PX` (24) pixels on a 1080p frame, so that on the OR display (a
16:9 frame shown about 0.7 times its size on a 1080p screen) they are as high as those of
a 32 px font, legible from 2 m. Lines wider than half the frame are wrapped. Colours (BGR): the active planned implant amber, other planned
implants blue, the detected pin in its cue colour (green/amber/red), white when there is
no cue.

A shot whose registration failed gets **no** plan overlay: :func:`draw_overlay` then
draws only a red ``NOT REGISTERED`` banner, so a surgeon never reads a plan drawn at a
wrong place.
"""

from __future__ import annotations

import cv2
import numpy as np

from or_assist.errors import InputError
from or_assist.render.outline import implant_outline

__all__ = ["MIN_TEXT_HEIGHT_PX", "TEXT_HEIGHT_FRACTION", "ACTIVE_BGR", "OTHER_BGR", "NOT_REGISTERED_TEXT", "text_height_px",
           "draw_text_block", "draw_overlay"]

MIN_TEXT_HEIGHT_PX = 24
TEXT_HEIGHT_FRACTION = 0.035   # of the frame height (capitals)
MAX_TEXT_WIDTH_FRACTION = 0.5  # of the frame width: longer lines are wrapped
ACTIVE_BGR = (0, 191, 255)     # amber
OTHER_BGR = (255, 160, 60)     # blue
PIN_BGR = (255, 255, 255)
WARNING_BGR = (60, 60, 240)
NOT_REGISTERED_TEXT = "NOT REGISTERED - no plan overlay"
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def text_height_px(frame_height_px: int) -> int:
    """Cap height of overlay text: 3.5 % of the frame height, at least 24 px at 1080p (and never below 12)."""
    return max(12, int(round(max(MIN_TEXT_HEIGHT_PX * frame_height_px / 1080.0,
                                 TEXT_HEIGHT_FRACTION * frame_height_px))))


def _font(frame_height_px: int) -> tuple[float, int, int]:
    target = text_height_px(frame_height_px)
    (_, h1), _ = cv2.getTextSize("H", _FONT, 1.0, 2)
    scale = target / h1
    thickness = max(2, int(round(scale * 2)))
    (_, h), _ = cv2.getTextSize("H", _FONT, scale, thickness)
    while h < target:
        scale *= 1.05
        (_, h), _ = cv2.getTextSize("H", _FONT, scale, thickness)
    return scale, thickness, h


def _as_bgr(frame) -> np.ndarray:
    if not isinstance(frame, np.ndarray) or frame.ndim not in (2, 3) or frame.dtype != np.uint8:
        raise InputError(f"must be a uint8 image (H, W) or (H, W, 3), got "
                         f"{getattr(frame, 'dtype', type(frame).__name__)} {getattr(frame, 'shape', '')}", "frame")
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.shape[2] != 3:
        raise InputError(f"must have 3 channels (BGR), got {frame.shape[2]}", "frame")
    return frame.copy()


def draw_text_block(img: np.ndarray, lines, origin_px=None, colours=None, align: str = "right") -> np.ndarray:
    """Draw text lines on a dark translucent box (in place); returns ``img``.

    Parameters
    ----------
    img : (H, W, 3) uint8
    lines : sequence of str
    origin_px : (x, y), optional
        Top-left (``align='left'``) or top-right (``'right'``) corner; default the frame's
        top-right corner with a margin.
    colours : sequence of BGR tuples, optional
        One per line (default white).
    """
    colours = list(colours) if colours is not None else [(255, 255, 255)] * len(lines)
    pairs = [(str(s), c) for s, c in zip(lines, colours) if s]
    if not pairs:
        return img
    h, w = img.shape[:2]
    scale, thick, th = _font(h)
    pairs = [(part, c) for s, c in pairs for part in _wrap(s, scale, thick, MAX_TEXT_WIDTH_FRACTION * w)]
    lines, colours = [s for s, _ in pairs], [c for _, c in pairs]
    gap = int(0.5 * th)
    sizes = [cv2.getTextSize(s, _FONT, scale, thick)[0] for s in lines]
    box_w = max(s[0] for s in sizes) + 2 * gap
    box_h = len(lines) * (th + gap) + gap + int(0.3 * th)
    if origin_px is None:
        origin_px = (w - gap, gap)
    x0 = int(origin_px[0] - box_w) if align == "right" else int(origin_px[0])
    x0 = int(np.clip(x0, 0, max(0, w - box_w)))
    y0 = int(np.clip(origin_px[1], 0, max(0, h - box_h)))
    roi = img[y0:y0 + box_h, x0:x0 + box_w]
    roi[:] = (roi.astype(np.float32) * 0.35).astype(np.uint8)
    y = y0 + gap + th
    for s, col in zip(lines, colours):
        cv2.putText(img, s, (x0 + gap, y), _FONT, scale, tuple(int(c) for c in col), thick, cv2.LINE_AA)
        y += th + gap
    return img


def _wrap(text: str, scale: float, thick: int, max_width_px: float) -> list[str]:
    """``text`` split at spaces into lines no wider than ``max_width_px`` (a single word may be)."""
    out, line = [], ""
    for word in text.split(" "):
        trial = f"{line} {word}" if line else word
        if line and cv2.getTextSize(trial, _FONT, scale, thick)[0][0] > max_width_px:
            out.append(line)
            line = word
        else:
            line = trial
    out.append(line)
    return out


def _pt(p, shift: int = 4) -> tuple[int, int]:
    return int(round(p[0] * (1 << shift))), int(round(p[1] * (1 << shift)))


def _line(img, a, b, colour, thick):
    if np.all(np.isfinite(a)) and np.all(np.isfinite(b)):
        cv2.line(img, _pt(a), _pt(b), colour, thick, cv2.LINE_AA, shift=4)


def draw_overlay(frame: np.ndarray, registration_ok: bool, *, pose=None, geometry=None, implants=(),
                 active_id: str | None = None, detection=None, deviation=None, cue=None,
                 status: str | None = None) -> np.ndarray:
    """Draw the guidance overlay on a copy of ``frame``.

    Parameters
    ----------
    frame : (H, W) or (H, W, 3) uint8 ndarray
        The shot as shown (grey or BGR).
    registration_ok : bool
        The shot's registration succeeded. When False nothing of the plan is drawn,
        only the ``NOT REGISTERED`` banner (and ``status``).
    pose, geometry : Pose, CArmGeometry
        Of the shot (needed to draw the plan).
    implants : sequence of Implant
        Planned implants to outline.
    active_id : str, optional
        The active implant (amber, with its axis and apex).
    detection : PinDetection, optional
    deviation : ShotDeviation, optional
        Draws the correction arrow from the tip to the planned axis.
    cue : Cue, optional
        Colour of the pin and the text lines (and warnings).
    status : str, optional
        An extra line (e.g. "no pin detected").

    Returns
    -------
    (H, W, 3) uint8 ndarray, BGR
    """
    if not isinstance(registration_ok, (bool, np.bool_)):
        raise InputError(f"must be True or False, got {registration_ok!r}", "registration_ok")
    img = _as_bgr(frame)
    h = img.shape[0]
    thick = max(2, int(round(h / 360)))
    if not registration_ok:
        return _banner(img, [NOT_REGISTERED_TEXT] + ([status] if status else []))
    if implants and (pose is None or geometry is None):
        raise InputError("pose and geometry are needed to draw planned implants", "pose/geometry")
    for imp in implants:
        colour = ACTIVE_BGR if imp.id == active_id else OTHER_BGR
        outline = implant_outline(imp, pose, geometry)
        poly = np.array([_pt(p) for p in outline.silhouette_px], np.int32).reshape(-1, 1, 2)
        cv2.polylines(img, [poly], True, colour, thick, cv2.LINE_AA, shift=4)
        if imp.id == active_id:
            _line(img, outline.entry_px, outline.apex_px, colour, max(1, thick // 2))
            cv2.circle(img, _pt(outline.apex_px), int(2.5 * thick) << 4, colour, thick, cv2.LINE_AA, shift=4)
    pin_colour = cue.colour_bgr if cue is not None else PIN_BGR
    if detection is not None:
        _line(img, detection.back_px, detection.tip_px, pin_colour, thick)
        # a tip that was not seen (hidden, cut off) is an open ring: where the pin was last seen
        seen = bool(getattr(detection, "tip_seen", True))
        cv2.circle(img, _pt(detection.tip_px), int(2 * thick) << 4, pin_colour, -1 if seen else thick,
                   cv2.LINE_AA, shift=4)
    if deviation is not None and deviation.tip_reliable and np.linalg.norm(deviation.tip_px - deviation.foot_px) > 3 * thick:
        cv2.arrowedLine(img, _pt(deviation.tip_px), _pt(deviation.foot_px), pin_colour, thick, cv2.LINE_AA,
                        shift=4, tipLength=0.25)
    lines, colours = [], []
    if cue is not None:
        for s in cue.lines:
            lines.append(s)
            colours.append(cue.colour_bgr if not colours else (255, 255, 255))
        for s in cue.warnings:
            lines.append(s)
            colours.append(WARNING_BGR)
    if status:
        lines.append(status)
        colours.append((255, 255, 255))
    draw_text_block(img, lines, colours=colours)
    return img


def _banner(img, banner) -> np.ndarray:
    """The lines centred at the top of the frame, the first in red."""
    scale, thick, th = _font(img.shape[0])
    width = max(cv2.getTextSize(s, _FONT, scale, thick)[0][0] for s in banner) + th
    x = max(0, (img.shape[1] + width) // 2)
    return draw_text_block(img, banner, origin_px=(x, int(0.02 * img.shape[0])),
                           colours=[WARNING_BGR] + [(255, 255, 255)] * (len(banner) - 1), align="right")
