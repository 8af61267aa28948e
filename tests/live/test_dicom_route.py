"""The headless run hands a DICOM shot's header with its shot event to the pipeline: a folder
holding one XA object of the sample pelvis (192 px detector in its header, the calibration
512 px) replayed by ``run_headless`` registers with the header's geometry from its angles."""

from __future__ import annotations

import numpy as np

from or_assist.live.pipeline import LivePipeline
from or_assist.live.run import LiveCase, run_headless
from or_assist.live.starts import HEADER_START
from or_assist.register.pose_params import isocenter_source_mm, pose_error
from or_assist.session.caselog import CaseLog
from or_assist.video.sources.folder import ImageFolderSource
from tests.live.dicom_scene import DETECTOR, sample_dicom_scene


def test_a_headless_dicom_shot_registers_with_its_header_geometry(tmp_path):
    plan, calibrated, registrar, truth, ds = sample_dicom_scene()
    folder = tmp_path / "shots"
    folder.mkdir()
    ds.save_as(folder / "inlet.dcm", enforce_file_format=True)
    log = CaseLog.create(tmp_path / "cases", plan=plan, geometry=calibrated.to_dict())
    pipe = LivePipeline(plan, calibrated, registrar=registrar, case_log=log, try_other_views=False)
    case = LiveCase(ImageFolderSource(folder, realtime=False), pipe, str(folder), None, log)
    lines = []
    try:
        summary = run_headless(case, implant_id="L1", view="lateral", log=lines.append)
    finally:
        case.close()
    assert (summary["exposures"], summary["registered"]) == (1, 1), lines
    assert lines[0].startswith("shot 1 [L1 inlet, DICOM geometry]: registered"), lines
    with CaseLog.open(summary["case_dir"], readonly=True) as done:
        (row,) = done.shots()
    reg = row["registration"]
    assert reg["success"] and row["view"] == "inlet"
    from or_assist.core.pose import Pose

    rot_deg, offset_mm = pose_error(Pose(np.asarray(reg["T_source_from_patient"])), truth,
                                    isocenter_source_mm(DETECTOR))
    assert rot_deg < 3.0 and np.linalg.norm(offset_mm) < 3.0, (rot_deg, offset_mm)
    assert pipe._last.attempts[0]["start"] == HEADER_START
