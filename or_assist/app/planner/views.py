"""Image panels of the planner: a CT slice view and a virtual fluoroscopy view (pyqtgraph).

A :class:`SliceView` shows one :class:`~or_assist.planning.reslice.SlicePlane`: image pixel
``(col, row)`` is drawn with its centre at view coordinates ``(col, row)`` (rows down),
so :meth:`SlicePlane.pixel_to_lps` of a view position is the clicked patient point. Left
clicks are reported as :attr:`SliceView.clicked` ``(lps_x, lps_y, lps_z)``; a left press
near a handle (an implant end) starts a drag reported by :attr:`SliceView.handle_dragged`
and :attr:`SliceView.handle_released`. Right/middle buttons and the wheel pan and zoom.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt5 import QtCore, QtGui

from or_assist.planning.reslice import SlicePlane

__all__ = ["SliceView", "FluoroView", "implant_colour"]

_HANDLE_PX = 9.0
_COLOURS = [(255, 196, 0), (0, 200, 255), (255, 90, 200), (120, 255, 80), (255, 130, 40), (170, 140, 255)]
LANDMARK_COLOURS = {
    "s1_foramen": (255, 60, 60), "s2_foramen": (255, 120, 60), "spinal_canal": (255, 0, 160),
    "sacral_promontory": (60, 220, 255), "alar_line": (60, 255, 160), "s1_endplate_posterior": (200, 200, 255),
    "s2_anterior_body": (160, 160, 255), "si_joint": (255, 255, 120),
}


def implant_colour(index: int) -> tuple[int, int, int]:
    """A distinct colour for the implant at ``index`` in the plan."""
    return _COLOURS[index % len(_COLOURS)]



def _image_view_box(widget: pg.PlotWidget):
    """Hide the axes and lock an image's aspect, row 0 at the top; the view box."""
    pi = widget.getPlotItem()
    pi.hideAxis("left")
    pi.hideAxis("bottom")
    vb = pi.getViewBox()
    vb.setAspectLocked(True)
    vb.invertY(True)
    return vb

class SliceView(pg.PlotWidget):
    """One CT slice with crosshair, implant and landmark overlays (module doc)."""

    clicked = QtCore.pyqtSignal(float, float, float)
    handle_dragged = QtCore.pyqtSignal(object, float, float, float)
    handle_released = QtCore.pyqtSignal(object)

    def __init__(self, title: str, parent=None):
        super().__init__(parent=parent)
        self.title = title
        self.plane: SlicePlane | None = None
        self.setMenuEnabled(False)
        self.hideButtons()
        self.setTitle(title, size="9pt")
        vb = _image_view_box(self)
        vb.setMouseEnabled(True, True)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.addItem(self.image)
        pen = pg.mkPen((0, 255, 0, 150), width=1)
        self.h_line = pg.InfiniteLine(angle=0, pen=pen, movable=False)
        self.v_line = pg.InfiniteLine(angle=90, pen=pen, movable=False)
        self.addItem(self.h_line, ignoreBounds=True)
        self.addItem(self.v_line, ignoreBounds=True)
        self._overlays: list = []
        self._handles: list[tuple[object, float, float]] = []   # (key, col, row)
        self._drag_key = None
        self._fitted_shape = None

    # ------------------------------------------------------------------ geometry
    def view_to_widget(self, col: float, row: float) -> QtCore.QPoint:
        """Viewport position (pixels of this widget) of an image pixel position."""
        scene = self.getPlotItem().getViewBox().mapViewToScene(QtCore.QPointF(col, row))
        return self.mapFromScene(scene)

    def widget_to_view(self, pos) -> tuple[float, float]:
        """Image pixel position ``(col, row)`` of a viewport position."""
        p = self.getPlotItem().getViewBox().mapSceneToView(self.mapToScene(pos))
        return float(p.x()), float(p.y())

    def lps_to_widget(self, point_lps_mm) -> QtCore.QPoint:
        """Viewport position of an LPS point projected onto this view's plane."""
        c, r, _ = self.plane.lps_to_pixel(np.asarray(point_lps_mm, dtype=np.float64))
        return self.view_to_widget(float(c), float(r))

    # ------------------------------------------------------------------ content
    def set_slice(self, plane: SlicePlane, image_u8: np.ndarray) -> None:
        """Show a windowed slice (``(H, W)`` uint8) of ``plane``."""
        self.plane = plane
        self.image.setImage(image_u8, autoLevels=False, levels=(0, 255))
        self.image.setRect(QtCore.QRectF(-0.5, -0.5, plane.width_px, plane.height_px))
        if self._fitted_shape != (plane.shape, plane.name):
            self._fitted_shape = (plane.shape, plane.name)
            self.getPlotItem().getViewBox().setRange(xRange=(-0.5, plane.width_px - 0.5),
                                                     yRange=(-0.5, plane.height_px - 0.5), padding=0.02)

    def set_crosshair(self, point_lps_mm) -> None:
        if self.plane is None:
            return
        c, r, _ = self.plane.lps_to_pixel(np.asarray(point_lps_mm, dtype=np.float64))
        self.v_line.setPos(float(c))
        self.h_line.setPos(float(r))

    def clear_overlays(self) -> None:
        for item in self._overlays:
            self.removeItem(item)
        self._overlays = []
        self._handles = []

    def add_segment(self, a_lps, b_lps, colour, width: float = 2.0, near_mm: float = 8.0,
                    handles: tuple | None = None) -> None:
        """Draw a projected segment; solid where within ``near_mm`` of the plane, dashed otherwise."""
        if self.plane is None:
            return
        pts = np.stack([a_lps, b_lps])
        c, r, d = self.plane.lps_to_pixel(pts)
        near = bool(np.min(np.abs(d)) <= near_mm or np.sign(d[0]) != np.sign(d[1]))
        style = QtCore.Qt.SolidLine if near else QtCore.Qt.DashLine
        item = pg.PlotDataItem(c, r, pen=pg.mkPen(colour, width=width if near else 1.0, style=style))
        self.addItem(item)
        self._overlays.append(item)
        if handles is not None:
            sc = pg.ScatterPlotItem(c, r, size=8, brush=pg.mkBrush(*colour), pen=pg.mkPen("k"),
                                    symbol="o")
            self.addItem(sc)
            self._overlays.append(sc)
            for key, cc, rr in zip(handles, c, r):
                self._handles.append((key, float(cc), float(rr)))

    def add_polygon(self, points_lps, colour, width: float = 1.5) -> None:
        """Draw a closed polygon of LPS points projected onto the plane."""
        pts = np.asarray(points_lps, dtype=np.float64)
        c, r, _ = self.plane.lps_to_pixel(np.vstack([pts, pts[:1]]))
        item = pg.PlotDataItem(c, r, pen=pg.mkPen(colour, width=width))
        self.addItem(item)
        self._overlays.append(item)

    def add_markers(self, points_lps, colours, sizes_px, labels=None, near_mm: float = 6.0) -> None:
        """Landmark markers: filled near the plane, hollow further away."""
        if self.plane is None or len(points_lps) == 0:
            return
        c, r, d = self.plane.lps_to_pixel(np.asarray(points_lps, dtype=np.float64))
        spots = []
        for k in range(len(c)):
            near = abs(d[k]) <= near_mm
            spots.append({"pos": (c[k], r[k]), "size": sizes_px[k], "pen": pg.mkPen(colours[k], width=2),
                          "brush": pg.mkBrush(*colours[k], 160) if near else pg.mkBrush(0, 0, 0, 0),
                          "symbol": "o"})
        sc = pg.ScatterPlotItem(spots=spots, pxMode=True)
        self.addItem(sc)
        self._overlays.append(sc)

    # ------------------------------------------------------------------ mouse
    def _handle_at(self, pos) -> object | None:
        best = None
        for key, c, r in self._handles:
            w = self.view_to_widget(c, r)
            dist = float(np.hypot(w.x() - pos.x(), w.y() - pos.y()))
            if dist <= _HANDLE_PX and (best is None or dist < best[0]):
                best = (dist, key)
        return None if best is None else best[1]

    def _lps_at(self, pos) -> np.ndarray | None:
        if self.plane is None:
            return None
        col, row = self.widget_to_view(pos)
        return self.plane.pixel_to_lps(col, row)

    def mousePressEvent(self, ev):  # noqa: N802 - Qt override
        if ev.button() == QtCore.Qt.LeftButton and self.plane is not None:
            key = self._handle_at(ev.pos())
            if key is not None:
                self._drag_key = key
                ev.accept()
                return
            p = self._lps_at(ev.pos())
            self.clicked.emit(float(p[0]), float(p[1]), float(p[2]))
            ev.accept()
            return
        super().mousePressEvent(ev)

    def mouseMoveEvent(self, ev):  # noqa: N802
        if self._drag_key is not None:
            p = self._lps_at(ev.pos())
            self.handle_dragged.emit(self._drag_key, float(p[0]), float(p[1]), float(p[2]))
            ev.accept()
            return
        super().mouseMoveEvent(ev)

    def mouseReleaseEvent(self, ev):  # noqa: N802
        if self._drag_key is not None:
            key, self._drag_key = self._drag_key, None
            self.handle_released.emit(key)
            ev.accept()
            return
        super().mouseReleaseEvent(ev)


class FluoroView(pg.PlotWidget):
    """A virtual fluoroscopy image with implant outlines (active implant thicker)."""

    def __init__(self, title: str, parent=None):
        super().__init__(parent=parent)
        self.setMenuEnabled(False)
        self.hideButtons()
        _image_view_box(self)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.addItem(self.image)
        self.label = pg.TextItem("", color=(255, 255, 0), anchor=(0, 0))
        self.addItem(self.label, ignoreBounds=True)
        self._overlays: list = []
        self._shape = None
        self.title = title
        self.last_view = None

    def show_view(self, view, colours: dict, active: str | None, caption: str) -> None:
        """Show a :class:`~or_assist.render.plan_live.LiveView`."""
        self.last_view = view
        h, w = view.image.shape
        self.image.setImage(view.image, autoLevels=False, levels=(0, 255))
        self.image.setRect(QtCore.QRectF(-0.5, -0.5, w, h))
        if self._shape != (h, w):
            self._shape = (h, w)
            self.getPlotItem().getViewBox().setRange(xRange=(-0.5, w - 0.5), yRange=(-0.5, h - 0.5), padding=0)
        for item in self._overlays:
            self.removeItem(item)
        self._overlays = []
        for o in view.outlines:
            poly = np.vstack([o.silhouette_px, o.silhouette_px[:1]])
            colour = colours.get(o.id, (255, 255, 0))
            item = pg.PlotDataItem(poly[:, 0], poly[:, 1],
                                   pen=pg.mkPen(colour, width=2.5 if o.id == active else 1.2))
            self.addItem(item)
            self._overlays.append(item)
            ax = pg.PlotDataItem(o.axis_px[:, 0], o.axis_px[:, 1],
                                 pen=pg.mkPen(colour, width=1, style=QtCore.Qt.DotLine))
            self.addItem(ax)
            self._overlays.append(ax)
        self.label.setText(caption)
        self.label.setPos(-0.5, -0.5)
        font = QtGui.QFont()
        font.setPointSize(8)
        self.label.setFont(font)
