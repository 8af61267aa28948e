"""Small recorded cases for the case-log and report tests.

Frames are synthetic fluoroscopy-like images (a circular field with a smooth pattern and
noise) with burnt-in patient text drawn by OpenCV, so the exact text mask is known.
"""

from __future__ import annotations

import cv2
import numpy as np

from or_assist.core.catalogue import load_catalogue
from or_assist.core.geometry import CArmGeometry
from or_assist.core.plan import Implant, Plan
from or_assist.session.caselog import CaseLog

PATIENT = "DOE^JOHNATHAN"
OPERATOR = "Dr Operator"
BURNT_TEXT = "DOE^JOHNATHAN 1970-01-01"
T0 = 1_700_000_000.0  # 2023-11-14, a fixed wall-clock start


def make_plan() -> Plan:
    cat = load_catalogue()
    return Plan(None, "ab" * 32, [
        Implant("L1", "left", cat.item("T7-45"), [70.0, 40.0, 40.0], [25.0, 40.0, 40.0], 0.0, "S1"),
        Implant("L2", "left", cat.item("T4-40"), [70.0, 60.0, 25.0], [30.0, 60.0, 25.0], 15.0, "S2"),
    ], [], [], cat)


def make_geometry() -> CArmGeometry:
    return CArmGeometry((320, 240), 1000.0, (0.6, 0.6), (160.0, 120.0), 600.0)


def make_frame(seed: int, shape=(240, 320)) -> tuple[np.ndarray, np.ndarray]:
    """``(frame, text_mask)``: a uint8 fluoroscopy-like frame with burnt-in white text
    in the top-left corner, and the exact (dilated) mask of that text."""
    h, w = shape
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = 110 + 50 * np.sin(xx / 23.0 + seed) * np.cos(yy / 31.0) + rng.normal(0, 4, shape)
    img[(xx - w / 2) ** 2 + (yy - h / 2) ** 2 > (0.48 * h) ** 2] = 0
    img = img.clip(0, 255).astype(np.uint8)
    text = np.zeros(shape, np.uint8)
    cv2.putText(text, BURNT_TEXT, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, 255, 1, cv2.LINE_AA)
    img[text > 0] = 255
    return img, cv2.dilate(text, np.ones((3, 3), np.uint8)) > 0


def overlay_of(frame: np.ndarray, colour=(0, 191, 255)) -> np.ndarray:
    """A BGR overlay: the frame with a planned axis line."""
    ov = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    cv2.line(ov, (60, 200), (260, 60), colour, 2, cv2.LINE_AA)
    return ov


def registration(ok: bool, seconds: float, similarity: float = 0.8) -> dict:
    doc = {"schema": "or_assist.registration/1", "success": ok, "similarity": similarity,
           "metric": "gradient_correlation", "seconds": seconds}
    if ok:
        doc["T_source_from_patient"] = [[1, 0, 0, 0], [0, 0, -1, 260], [0, 1, 0, 760], [0, 0, 0, 1]]
        doc["estimated_error_mm"] = round(0.5 + 0.1 * seconds, 3)
    else:
        doc["reason"] = "similarity below threshold"
    return doc


def record_case(root, *, with_masks: bool = True, close: bool = True) -> tuple[CaseLog, dict]:
    """A case of 4 shots (shot 2 not registered), 3 captures and 2 events.

    Returns the log (closed unless ``close=False``) and what was written:
    ``{"frames": {shot_id: frame}, "masks": {...}, "overlays": {capture_id: image}}``.
    """
    log = CaseLog.create(root, plan=make_plan(), geometry=make_geometry(), patient_label=PATIENT,
                         operator=OPERATOR, started=T0)
    frames, masks, overlays = {}, {}, {}
    for i in range(4):
        frame, mask = make_frame(i)
        sid = log.log_shot(frame, timestamp=T0 + 60 * i + 5, preprocessed=frame[20:220, 40:280],
                           registration=registration(i != 1, 1.0 + i), implant_id="L1" if i < 3 else "L2",
                           view="inlet" if i % 2 == 0 else "outlet", text_mask=mask if with_masks else None)
        frames[sid], masks[sid] = frame, mask
        if i == 1:
            continue
        ov = overlay_of(frame)
        dev = {"deviation_2d": {"tip_offset_mm": 1.0 + i, "angle_deg": 2.0 + i / 2, "tip_reliable": True},
               "deviation_3d": {"apex_deviation_mm": 3.25, "angle_deg": 4.5} if i == 2 else None}
        cid = log.log_capture(sid, ov, dev, {"level": "amber" if i < 3 else "green",
                                             "lines": [f"tip {1.0 + i:.1f} mm cranial of plan"], "warnings": []},
                              timestamp=T0 + 60 * i + 8)
        overlays[cid] = ov
    log.log_event("implant_selected", {"implant": "L2"}, timestamp=T0 + 170)
    log.log_event("note", "patient DOE repositioned", timestamp=T0 + 175)
    if close:
        log.close(ended=T0 + 600)
    return log, {"frames": frames, "masks": masks, "overlays": overlays}
