"""The OR display's image views: the live video with the guidance overlay, the virtual view.

:class:`ImageView` is a pyqtgraph view (no mouse, no menu, aspect locked, rows down) of
one image, optionally with the guidance overlay as a separate layer above it
(:func:`overlay_layer`: opaque only where the overlay drew, opacity adjustable).
:class:`LiveView` adds the video: it draws the capture thread's newest frame when it is a
new one and counts the display rate.
"""

from __future__ import annotations

import collections
import time

import numpy as np
import pyqtgraph as pg
from PyQt5 import QtCore

from or_assist.app import theme

__all__ = ["ImageView", "LiveView", "overlay_layer"]


def overlay_layer(overlay_bgr: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """The overlay as its own RGBA layer: opaque where it differs from the frame.

    Parameters
    ----------
    overlay_bgr : (H, W, 3) uint8
        The frame with the overlay drawn on it.
    frame : (H, W) uint8
        The frame alone.

    Returns
    -------
    (H, W, 4) uint8 ndarray, RGBA
    """
    drawn = np.any(overlay_bgr != frame[:, :, None], axis=2) if overlay_bgr.shape[:2] == frame.shape else \
        np.ones(overlay_bgr.shape[:2], bool)
    out = np.empty(overlay_bgr.shape[:2] + (4,), np.uint8)
    out[..., :3] = overlay_bgr[..., ::-1]
    out[..., 3] = drawn.view(np.uint8) * 255
    return out


class ImageView(pg.GraphicsLayoutWidget):
    """One image (``item`` in ``box``), and with ``overlay=True`` an overlay layer above it
    (``overlay_item``, at ``opacity``).

    Parameters
    ----------
    overlay : bool
    opacity : float
        Of the overlay layer, 0-1.
    """

    #: Below this height (px) the image is not drawn: a postage stamp reads as a glitch, and
    #: the room went to texts that needed it (the virtual view gives it up first).
    MIN_DRAWN_PX = 96

    def __init__(self, overlay: bool = False, opacity: float = 1.0, parent=None):
        super().__init__(parent)
        self.setBackground(theme.BACKGROUND)
        self.setFocusPolicy(QtCore.Qt.NoFocus)
        self.box = self.addViewBox(lockAspect=True, invertY=True, enableMouse=False)
        self.box.setMenuEnabled(False)
        self.item = pg.ImageItem(axisOrder="row-major")
        self.box.addItem(self.item)
        self.overlay_item = None
        if overlay:
            self.overlay_item = pg.ImageItem(axisOrder="row-major")
            self.overlay_item.setZValue(10)
            self.overlay_item.setOpacity(opacity)
            self.box.addItem(self.overlay_item)

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        if getattr(self, "item", None) is not None:   # (also called while it is built)
            self.item.setVisible(self.height() >= self.MIN_DRAWN_PX)

    def show_bgr(self, image: np.ndarray) -> None:
        """Show a BGR uint8 image, fitted to the view."""
        self.item.setImage(np.ascontiguousarray(image[..., ::-1]), autoLevels=False, levels=(0, 255))
        self.box.autoRange(padding=0.0)

    def show_overlay(self, layer: np.ndarray) -> None:
        """The overlay layer (RGBA, :func:`overlay_layer`)."""
        self.overlay_item.setImage(layer, autoLevels=False, levels=(0, 255))


class LiveView(ImageView):
    """The live video with the overlay layer (module doc).

    Parameters
    ----------
    opacity : float
        Of the overlay layer.
    """

    def __init__(self, opacity: float, parent=None):
        super().__init__(overlay=True, opacity=opacity, parent=parent)
        self.frames_drawn = 0
        self._last_index = None
        self._draw_times = collections.deque(maxlen=50)

    def draw(self, frame) -> bool:
        """Draw ``frame`` (a :class:`~or_assist.video.sources.base.Frame`, or None) unless it is
        the one drawn last; the first is fitted to the view. True when drawn."""
        if frame is None or frame.index == self._last_index:
            return False
        first = self._last_index is None
        self._last_index = frame.index
        self.item.setImage(frame.image, autoLevels=False, levels=(0, 255))
        if first:
            self.box.autoRange(padding=0.0)
        self.frames_drawn += 1
        self._draw_times.append(time.monotonic())
        return True

    @property
    def fps(self) -> float:
        """Frames drawn per second over the last 50."""
        t = self._draw_times
        return (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else 0.0
