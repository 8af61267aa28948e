"""Shots sent by the C-arm over DICOM, into the live case: a real pynetdicom SCU sends simulated
shots of the real CT to ``or-assist run --source dicom://...`` (open_real_case + run_headless);
they register with the header's geometry, from the header's positioner angles first; the
header's disagreement with the calibration is said once; a header without geometry falls back
to the calibration or is refused, said."""

from __future__ import annotations

import copy
import socket
import threading
import time

import numpy as np
import pytest
from pynetdicom import AE

from or_assist.core.carm_profiles import load_profile
from or_assist.core.geometry import save_geometry
from or_assist.core.plan import load_plan, load_plan_ct
from or_assist.core.view_poses import plan_view_pose
from or_assist.dicom.receive import STORAGE_SOP_CLASSES
from or_assist.dicom.shot import read_dicom_shot
from or_assist.live.pipeline import LivePipeline
from or_assist.live.starts import HEADER_START
from or_assist.register.pipeline import RegistrationResult
from or_assist.register.pose_params import isocenter_source_mm, pose_error
from or_assist.register.settings import RegistrationSettings
from or_assist.session.caselog import CaseLog
from or_assist.sim.dicom_carm import field_windowed_values, shot_dataset
from tests.conftest import REAL_PLAN
from tests.dicom.test_receive import free_port
from tests.live.conftest import turned_pose

PROFILE = load_profile("siemens_cios_fusion")
DETECTOR = PROFILE.geometry_at(192)                                        # the DICOM images' pixels
CALIBRATED = PROFILE.geometry_at(256).with_changes(sid_mm=1100.0)          # the video calibration: 8 % longer SID


@pytest.fixture(scope="module")
def scene():
    """The real-CT plan's R1: a lateral and an inlet shot, each turned off the plan, as XA objects."""
    from or_assist.render.drr import AttenuationVolume, DRRRenderer
    from or_assist.sim.shots.settings import ShotSettings
    from or_assist.sim.shots.simulate import simulate_shot

    plan = load_plan(REAL_PLAN)
    ct, _ = load_plan_ct(plan)
    renderer = DRRRenderer(AttenuationVolume.from_ct(ct))
    shots = []
    for k, (view, orbital, tilt) in enumerate((("lateral", 6.0, -4.0), ("inlet", -5.0, 4.0))):
        planned = plan_view_pose(plan, "R1", view, geometry=DETECTOR)
        truth = turned_pose(planned, orbital, tilt, plan.landmarks, DETECTOR.source_to_isocenter_mm)
        sim = simulate_shot(renderer, truth, DETECTOR, settings=ShotSettings(seed=20 + k, supersample=1))
        ds = shot_dataset(field_windowed_values(sim), DETECTOR, truth, patient_position="prone", instance_number=k + 1)
        shots.append((view, truth, ds))
    return plan, renderer, shots


def _send_when_listening(port, datasets, statuses):
    ae = AE(ae_title="CARM1")
    for uid in STORAGE_SOP_CLASSES:
        ae.add_requested_context(uid)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:  # listening yet? (pynetdicom leaks its socket on a refused connection: a ResourceWarning)
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            time.sleep(0.2)
            continue
        assoc = ae.associate("127.0.0.1", port, ae_title="ORASSIST")
        if assoc.is_established:
            statuses.extend(assoc.send_c_store(ds).Status for ds in datasets)
            assoc.release()
            return
        time.sleep(0.2)


@pytest.mark.slow
def test_a_case_sent_over_dicom_registers_with_the_header_geometry_and_start(scene, tmp_path):
    from or_assist.live.run import open_real_case, run_headless

    plan, _, shots = scene
    geometry_path = save_geometry(CALIBRATED, tmp_path / "geometry.json")
    port = free_port()
    case = open_real_case(REAL_PLAN, geometry_path, f"dicom://ORASSIST@{port}?allow=CARM1", cases_root=tmp_path)
    case.pipeline.registrar.settings = RegistrationSettings(time_budget_s=None)  # a loaded test machine
    statuses, lines = [], []
    sender = threading.Thread(target=_send_when_listening, args=(port, [ds for _, _, ds in shots], statuses))
    sender.start()
    try:
        summary = run_headless(case, max_shots=2, duration_s=240, implant_id="R1", view="lateral", log=lines.append)
    finally:
        sender.join()
        case.close()
    assert statuses == [0, 0]
    assert summary["exposures"] == 2 and summary["registered"] == 2, lines
    received = sorted((summary["case_dir"] / "received").iterdir())
    assert [p.suffix for p in received] == [".dcm", ".dcm"]
    # the plan's CT is a NIfTI volume: no patient identity, so each image says it could not be checked
    assert sum("could not be checked" in line for line in lines) == 2
    shot_lines = [line for line in lines if line.startswith("shot ")]
    assert "DICOM geometry" in shot_lines[0] and "DICOM geometry" in shot_lines[1]
    # the header's SID (1020 mm) disagrees with the calibrated 1100 mm: said once, with the first shot
    assert "WARNING: the DICOM header's source-detector distance (1020 mm)" in shot_lines[0]
    assert "source-detector distance" not in shot_lines[1]
    with CaseLog.open(summary["case_dir"], readonly=True) as log:
        rows, events = log.shots(), log.events()
    kinds = [e["kind"] for e in events]
    assert "dicom_receiver" in kinds and kinds.count("dicom_geometry") >= 1 and kinds.count("dicom_shot") == 2
    for row, (view, truth, _) in zip(rows, shots):
        reg = row["registration"]
        assert reg["success"] and row["view"] == view
        from or_assist.core.pose import Pose

        rot_deg, offset_mm = pose_error(Pose(np.asarray(reg["T_source_from_patient"])), truth,
                                        isocenter_source_mm(DETECTOR))
        assert rot_deg < 1.0 and np.linalg.norm(offset_mm) < 5.0, (view, rot_deg, offset_mm)


@pytest.mark.slow
def test_the_header_start_comes_first_and_registers(scene):
    """The pipeline directly: the first attempt starts from the header's angles and succeeds;
    a repeated shot of that view is tracked first."""
    from or_assist.register.pipeline import Registrar

    plan, renderer, shots = scene
    pipe = LivePipeline(plan, CALIBRATED, registrar=Registrar(renderer, CALIBRATED,
                                                              RegistrationSettings(time_budget_s=None)))
    view, truth, ds = shots[1]
    shot = read_dicom_shot(ds)
    pixels = (shot.pixels.astype(np.uint32) << 4).astype(np.uint16)
    result = pipe.process(pixels, "R1", "lateral", dicom=shot.header)   # lateral selected, the inlet shown
    assert result.registered and result.geometry_source == "DICOM header"
    assert result.attempts[0]["start"] == HEADER_START and result.attempts[0]["success"]
    assert result.view == view and len(result.attempts) == 1
    assert result.frame.dtype == np.uint8 and result.overlay_bgr.shape[:2] == (192, 192)
    assert pose_error(result.pose, truth, isocenter_source_mm(DETECTOR))[0] < 1.0
    # the same view again (the pin advanced, the C-arm untouched): tracking from the last
    # registered pose stays the first start, the header's angles next
    again = pipe.process(pixels, "R1", view, dicom=shot.header)
    assert again.registered and again.attempts[0]["start"] == "tracked"
    assert pose_error(again.pose, truth, isocenter_source_mm(DETECTOR))[0] < 1.0


class Fixed:
    """A registrar that is not a Registrar: it cannot be copied for another geometry."""

    def __init__(self, pose):
        self.pose, self.frames = pose, []

    def register(self, frame, init_pose, *, polarity="bone-dark", library=None, target_lps_mm=None):
        self.frames.append(frame)
        return RegistrationResult(self.pose, True, 0.9, "gradient_correlation", 0.01, estimated_error_mm=1.0)


def test_a_header_without_geometry_uses_the_calibration_or_is_refused(scene):
    plan, _, shots = scene
    view, truth, ds = shots[0]
    ds = copy.deepcopy(ds)
    for tag in ("DistanceSourceToDetector", "ImagerPixelSpacing"):
        del ds[tag]
    shot = read_dicom_shot(ds)
    assert not shot.header.has_geometry
    image = (shot.pixels >> 4).astype(np.uint8)
    # the calibration is of another size: nothing can be registered, and it says why
    pipe = LivePipeline(plan, CALIBRATED, registrar=Fixed(truth), try_other_views=False)
    result = pipe.process(image, "R1", view, dicom=shot.header)
    assert not result.registered and result.registration is None
    assert "no C-arm geometry in the DICOM header" in result.message and "192x192" in result.message
    # the calibration is of this size: registered with it, said once
    pipe = LivePipeline(plan, DETECTOR, registrar=Fixed(truth), try_other_views=False)
    first = pipe.process(image, "R1", view, dicom=shot.header)
    second = pipe.process(image, "R1", view, dicom=shot.header)
    assert first.registered and first.geometry_source == "calibration"
    assert any("registered with the calibrated geometry" in n for n in first.notices) and not second.notices
