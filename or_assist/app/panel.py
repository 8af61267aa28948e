"""The OR display's deviation panel and what it shows for the shot on screen.

:class:`DeviationPanel` is the panel beside the live image: the coloured headline (one
state wins, :func:`~or_assist.live.wording.headline`: a safety warning is never shown
beside green), which shot, implant and view the numbers belong to, the big numbers
(:func:`main_numbers`: the two-view 3-D apex deviation and angle when there is one, else
the shot's 2-D tip offset and angle, each only where it was seen), the correction in
words, the warnings and the C-arm positioning hint. :meth:`DeviationPanel.render` is the
one place that decides what it shows:

* a result of the shot on screen: its numbers in colour, the cue's correction lines, or
  for a shot that did not register NOT REGISTERED with a plain-language reason
  (:func:`~or_assist.live.wording.plain_reason`) and an approximate hint;
* a shot being matched to the CT: its number, implant and view, no numbers, no colour;
* a changing image: the previous shot's numbers greyed and labelled with that shot.

:func:`label` and :func:`number_html` make the display's texts (sizes from
:mod:`~or_assist.app.theme`).
"""

from __future__ import annotations

import numpy as np
from PyQt5 import QtCore, QtGui, QtWidgets

from or_assist.app import theme
from or_assist.guidance.cues import CueThresholds, judged_apex_mm
from or_assist.guidance.deviation import END_ON_FORESHORTENING
from or_assist.live.wording import headline, plain_reason, plain_warning

__all__ = ["DeviationPanel", "WrappedLabel", "label", "main_numbers", "number_html"]


class WrappedLabel(QtWidgets.QLabel):
    """A word-wrapped label that claims the height its wrapped lines need at its width.

    A layout nested in others does not ask a word-wrapped label for its height at the
    width it is given, and squeezes it (its lines drawn over the next label's, the last
    one cut). This one sets its minimum height to :meth:`heightForWidth` whenever its text
    or width changes, so that the room is taken from what can give it (the virtual view),
    never from what is said. ``floor_px`` is a minimum height it keeps even when short.
    """

    def __init__(self, text: str = "", floor_px: int = 0, parent=None):
        super().__init__(text, parent)
        self.floor_px = int(floor_px)
        self.setWordWrap(True)
        self._fit()

    def setText(self, text: str) -> None:  # noqa: N802 (Qt's name)
        super().setText(text)
        self._fit()

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        need = self.heightForWidth(max(self.width(), 1)) if self.text() else 0
        need = max(need, self.floor_px)
        if need != self.minimumHeight():
            self.setMinimumHeight(need)


def label(text: str, size_px: int, colour: str = theme.TEXT, bold: bool = True,
          align=QtCore.Qt.AlignLeft | QtCore.Qt.AlignVCenter, wrap: bool = False) -> QtWidgets.QLabel:
    """A label of the display: ``size_px`` font, ``colour``, takes no keyboard focus.

    Parameters
    ----------
    text : str
    size_px : int
        Font pixel size.
    colour : str
        Hex colour of the text.
    bold : bool
    align : Qt.Alignment
    wrap : bool
        Word-wrap the text, with the height its lines need (:class:`WrappedLabel`).

    Returns
    -------
    QLabel
    """
    lab = WrappedLabel(text) if wrap else QtWidgets.QLabel(text)
    lab.setFont(theme.font_px(size_px, bold))
    lab.setStyleSheet(f"color: {colour};")
    lab.setAlignment(align)
    lab.setFocusPolicy(QtCore.Qt.NoFocus)
    return lab


def number_html(value: str, unit: str, colour: str) -> str:
    """A big number (:data:`~or_assist.app.theme.NUMBER_PX`) with a smaller unit, as rich text.

    Parameters
    ----------
    value : str
        The number as shown ("3.1", "--").
    unit : str
    colour : str
        Hex colour of both.

    Returns
    -------
    str
    """
    return (f"<span style='font-size:{theme.NUMBER_PX}px; color:{colour}'>{value}</span>"
            f"<span style='font-size:{theme.TEXT_PX}px; color:{colour}'> {unit}</span>")


def main_numbers(r, thresholds: CueThresholds | None = None) -> tuple[float | None, float | None, str]:
    """The numbers the panel shows big for a result.

    With a ``deviation_3d``, the two-view apex deviation the 3-D cue judges
    (:func:`~or_assist.guidance.cues.judged_apex_mm`: at the planned depth while the pin is
    short of it) and the angle; else the shot's 2-D tip offset and angle, each only where
    it was seen (no offset from an unseen tip, no angle of a pin seen end-on).

    Parameters
    ----------
    r : ShotResult or None
    thresholds : CueThresholds, optional

    Returns
    -------
    mm : float or None
    deg : float or None
    kind : str
        What the numbers are ("2-D, this view; tip not seen", the 3-D label with its ±).
    """
    if r is None or not r.registered:
        return None, None, ""
    d3 = r.deviation_3d
    if d3 is not None:
        kind = r.deviation_3d_label()
        sigma = d3.uncertainty.get("apex_deviation_mm")
        if sigma is not None and np.isfinite(sigma):
            kind += f" (±{sigma:.1f} mm)"
        th = thresholds or CueThresholds()
        if d3.remaining_depth_mm > th.green_mm:
            kind += f"; apex at planned depth, {d3.remaining_depth_mm:.0f} mm to go"
        return judged_apex_mm(d3, th), float(d3.angle_deg), kind
    dev = r.deviation
    if dev is not None:
        tip_seen = dev.tip_reliable
        end_on = dev.foreshortening < END_ON_FORESHORTENING
        kind = "2-D, this view" + ("" if tip_seen else "; tip not seen") + ("; pin seen end-on" if end_on else "")
        return (float(dev.tip_offset_mm) if tip_seen else None,
                None if end_on else float(dev.angle_deg), kind)
    return None, None, ""


class DeviationPanel(QtWidgets.QFrame):
    """The deviation panel (module doc).

    Its labels are attributes: ``level_label`` (the headline), ``state_label``,
    ``mm_label``, ``deg_label``, ``correction_label``, ``warning_label``, and
    ``hint_label`` (the C-arm hint, which the window places below the panel).

    Parameters
    ----------
    thresholds : CueThresholds, optional
        The pipeline's (what the 3-D numbers are judged with).
    """

    def __init__(self, thresholds: CueThresholds | None = None, parent=None):
        super().__init__(parent)
        self.thresholds = thresholds
        self.setObjectName("panel")
        col = QtWidgets.QVBoxLayout(self)
        col.setContentsMargins(16, 12, 16, 12)
        self.state_label = label("", theme.TEXT_PX, theme.DIM, wrap=True)
        numbers = QtWidgets.QHBoxLayout()
        self.mm_text = self.deg_text = "--"
        self.mm_label = label(number_html("--", "mm", theme.DIM), theme.NUMBER_PX)
        self.deg_label = label(number_html("--", "deg", theme.DIM), theme.NUMBER_PX)
        for lab in (self.mm_label, self.deg_label):
            lab.setMinimumHeight(theme.NUMBER_PX + 16)
        numbers.addWidget(self.mm_label)
        numbers.addWidget(self.deg_label)
        self.level_label = label("", theme.TITLE_PX, theme.BACKGROUND, align=QtCore.Qt.AlignCenter)
        self.level_label.setMinimumHeight(theme.TITLE_PX + 20)
        self.correction_label = label("", theme.TEXT_PX, wrap=True)
        self.correction_label.floor_px = 2 * QtGui.QFontMetrics(self.correction_label.font()).lineSpacing()
        self.warning_label = label("", theme.TEXT_PX, theme.RED, wrap=True)
        for w in (self.level_label, self.state_label):
            col.addWidget(w)
        col.addLayout(numbers)
        col.addWidget(self.correction_label)
        col.addWidget(self.warning_label)
        self.hint_label = label("", theme.TEXT_PX, theme.AMBER, wrap=True)

    def render(self, r, *, shown: dict | None, image_changing: bool, context) -> None:
        """Show what is on screen now (module doc).

        Parameters
        ----------
        r : ShotResult or None
            The result of the shot on screen (None while it is matched, or before any).
        shown : dict or None
            The shot on screen: ``{"index", "number", "implant", "view"}``; None before any.
        image_changing : bool
            The video no longer shows that shot.
        context : callable(ShotResult) -> str
            Which shot, implant and view a result is ("shot 2 · L1 lateral").
        """
        pending = shown is not None and r is None
        text, level = headline(r, shot_pending=pending, image_changing=image_changing)
        coloured = level in ("green", "amber", "red")
        back = theme.level_colour(level) if coloured else theme.PANEL
        fore = theme.BACKGROUND if coloured else theme.TEXT
        self.level_label.setText(text)
        self.level_label.setStyleSheet(f"background: {back}; color: {fore}; border-radius: 6px;")
        if r is None or image_changing:
            self._show_without_result(r, shown, context)
        else:
            self._show_result(r, context)

    def _show_without_result(self, r, shown, context) -> None:
        """A shot being matched, a changing image, or nothing yet: no numbers in colour."""
        self.correction_label.setText("")
        self.warning_label.setText("")
        self.hint_label.setText("")
        if r is not None:  # the image changes: the numbers shown are the previous shot's, greyed
            self.state_label.setText(f"greyed: {context(r)} (previous image)")
            self.state_label.setStyleSheet(f"color: {theme.DIM};")
            mm, deg, _ = main_numbers(r, self.thresholds)
            self.show_numbers(mm, deg, theme.DIM)
            return
        self.state_label.setText("" if shown is None else f"shot {shown['number']} · {shown['implant']} "
                                                          f"{shown['view']} · matching to the CT")
        self.state_label.setStyleSheet(f"color: {theme.TEXT};")
        self.show_numbers(None, None, theme.DIM)

    def _show_result(self, r, context) -> None:
        """The result of the shot on screen."""
        mm, deg, kind = main_numbers(r, self.thresholds)
        self.state_label.setText(context(r) + (f" · {kind}" if kind else ""))
        self.state_label.setStyleSheet(f"color: {theme.TEXT};")
        self.show_numbers(mm, deg, theme.TEXT)
        if not r.registered:
            reason = r.message or (r.registration.reason if r.registration is not None else None)
            self.correction_label.setText(plain_reason(reason))
            self.warning_label.setText("")
            self.hint_label.setText(f"C-arm: {r.hint}" if r.hint else "")   # marked "approx." by the pipeline
            return
        cue3 = r.cue_3d if r.deviation_3d is not None else None
        cue = cue3 or r.cue   # the lines of the cue whose numbers are shown (the two-view one wins)
        if cue is not None:
            self.correction_label.setText("\n".join(cue.lines[:2]))
        else:
            self.correction_label.setText(plain_reason(r.message or "no pin detected",
                                                       default=r.message))   # registered: never "Not registered"
        warnings = dict.fromkeys(w for c in (r.cue, cue3) if c is not None for w in c.warnings)
        self.warning_label.setText("\n".join(plain_warning(w) for w in warnings))
        self.hint_label.setText(f"C-arm: {r.hint}" if r.hint else "")

    def show_numbers(self, mm: float | None, deg: float | None, colour: str) -> None:
        """The big numbers ("--" for None) and the correction in ``colour``."""
        self.mm_text = "--" if mm is None else f"{mm:.1f}"
        self.deg_text = "--" if deg is None else f"{deg:.0f}"
        self.mm_label.setText(number_html(self.mm_text, "mm", colour))
        self.deg_label.setText(number_html(self.deg_text, "deg", colour))
        self.correction_label.setStyleSheet(f"color: {colour};")

    def texts(self) -> dict:
        """``level``, ``state``, ``mm``, ``deg``, ``correction``, ``warnings``, ``hint``."""
        return {"state": self.state_label.text(), "mm": f"{self.mm_text} mm", "deg": f"{self.deg_text} deg",
                "level": self.level_label.text(), "correction": self.correction_label.text(),
                "warnings": self.warning_label.text(), "hint": self.hint_label.text()}
