"""A shot the C-arm sends over DICOM, through the OR display's Qt workers (pytest-qt, offscreen):
a real pynetdicom SCU sends a simulated shot of the sample pelvis to the display's
``dicom://`` source; the video worker hands the shot event with the frame's header and
full-depth pixels to the registration worker, and the shot registers with the header's
geometry (a 192 px detector; the calibration is another, 512 px) from its positioner angles.

The registration is real (the sample CT's DRRs), with short stages so that it takes a second
or two: the start from the header's angles is close to the truth."""

from __future__ import annotations

import os
import threading

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("pytestqt")

from or_assist.app.main_window import MainWindow  # noqa: E402
from or_assist.app.settings import AppSettings  # noqa: E402
from or_assist.live.pipeline import LivePipeline  # noqa: E402
from or_assist.live.run import LiveCase  # noqa: E402
from or_assist.live.starts import HEADER_START  # noqa: E402
from or_assist.register.pose_params import isocenter_source_mm, pose_error  # noqa: E402
from or_assist.session.caselog import CaseLog  # noqa: E402
from or_assist.video.sources.spec import open_source  # noqa: E402
from tests.dicom.test_receive import free_port  # noqa: E402
from tests.live.dicom_scene import DETECTOR, sample_dicom_scene  # noqa: E402
from tests.live.test_dicom_live import _send_when_listening  # noqa: E402


class RecordingPipeline(LivePipeline):
    """The live pipeline, noting what reaches :meth:`process` besides the image."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.received = []

    def process(self, image, *args, **kwargs):
        self.received.append((image, kwargs.get("dicom"), kwargs.get("pixels")))
        return super().process(image, *args, **kwargs)


@pytest.fixture(scope="module")
def scene():
    """The sample pelvis: an inlet shot of L1 turned off its plan at the DICOM detector, as an XA object."""
    return sample_dicom_scene()


def test_a_dicom_shot_through_the_qt_workers_registers_with_its_header_geometry(scene, qtbot, qapp, tmp_path):
    plan, calibrated, registrar, truth, ds = scene
    assert tuple(calibrated.image_size_px) != (DETECTOR.width, DETECTOR.height)   # the calibration cannot serve
    port = free_port()
    log = CaseLog.create(tmp_path / "cases", plan=plan, geometry=calibrated.to_dict())
    pipe = RecordingPipeline(plan, calibrated, registrar=registrar, case_log=log, try_other_views=False)
    source = open_source(f"dicom://ORASSIST@{port}?allow=CARM1", store_dir=tmp_path / "received",
                         accept_any_patient=True)
    w = MainWindow(LiveCase(source, pipe, f"dicom://ORASSIST@{port}", None, log), AppSettings())
    qtbot.addWidget(w)
    w.show()
    w.start()          # lateral selected; the C-arm sends an inlet
    statuses = []
    sender = threading.Thread(target=_send_when_listening, args=(port, [ds], statuses))
    sender.start()
    try:
        qtbot.waitUntil(lambda: w.last_result is not None, timeout=60000)
        r = w.last_result
    finally:
        sender.join()
        w.shutdown()
    assert statuses == [0] and not w.errors
    # the frame's header and full-depth pixels came with the shot event
    (image, header, pixels), = pipe.received
    assert header is not None and header.sop_instance_uid == ds.SOPInstanceUID
    assert pixels is not None and pixels.dtype == np.uint16 and pixels.shape == image.shape == (192, 192)
    # registered with the header's geometry, from its positioner angles
    assert r.registered and r.geometry_source == "DICOM header", r.summary()
    assert r.attempts[0]["start"] == HEADER_START and r.view == "inlet"
    assert "DICOM geometry" in r.summary() and r.overlay_bgr.shape[:2] == (192, 192)
    rot_deg, offset_mm = pose_error(r.pose, truth, isocenter_source_mm(DETECTOR))
    assert rot_deg < 3.0 and np.linalg.norm(offset_mm) < 3.0, (rot_deg, offset_mm)
    assert w.panel_text()["state"].startswith("shot 1 · L1 inlet")
    with CaseLog.open(log.case_dir, readonly=True) as done:
        (row,) = done.shots()
    assert row["registration"]["success"] and row["view"] == "inlet"
