"""``pin_command`` (or-assist pin) end to end on simulated shots of the real CT, and its bad inputs."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from or_assist.core.geometry import save_geometry
from or_assist.core.pose import Pose, save_pose
from or_assist.errors import InputError
from or_assist.cli.pin import pin_command
from or_assist.sim.pin_cases import make_case
from tests.conftest import REAL_PLAN

KW = dict(detector_px=256, frame_px=(960, 540), supersample=1, placed_probability=0.0)


@pytest.fixture(scope="module")
def files(real_ct_path, tmp_path_factory):
    d = tmp_path_factory.mktemp("pin")
    case = make_case(21, REAL_PLAN, **KW)
    shots = []
    for k, shot in enumerate(case.shots):
        cv2.imwrite(str(d / f"shot{k}.png"), shot.frame)
        save_pose(shot.pose, d / f"pose{k}.json")
        shots.append((d / f"shot{k}.png", d / f"pose{k}.json"))
    save_geometry(case.shots[0].video_geometry, d / "geometry.json")
    return d, case, shots, real_ct_path


def test_two_shots(files):
    d, case, shots, ct = files
    res = pin_command(ct, d / "geometry.json", REAL_PLAN, case.implant.id, shots, d / "dev.json",
                      overlay_path=d / "overlay.png")
    doc = json.loads((d / "dev.json").read_text())
    assert doc["schema"] == "or_assist.pin_deviation/1" and len(doc["shots"]) == 2
    for s in doc["shots"]:
        assert s["registration_ok"] and s["pin"] is not None and s["deviation_2d"]["angle_deg"] >= 0
    d3 = doc["deviation_3d"]
    assert np.linalg.norm(np.array(d3["tip_lps_mm"]) - case.pin.tip_lps_mm) < 1.5
    for key in ("direction", "apex_deviation_mm", "angle_deg", "uncertainty"):
        assert key in d3
    assert abs(d3["angle_deg"] - case.angle_deg) < 1.0
    img = cv2.imread(str(res["overlay"]))
    assert img.shape[1] > img.shape[0] * 2 - 50   # two panels side by side
    assert res["summary"]


def test_failed_registration_shot(files):
    d, case, shots, ct = files
    (d / "failed.json").write_text(json.dumps({"schema": "or_assist.registration/1", "success": False,
                                               "similarity": 0.1, "metric": "gc", "seconds": 1.0,
                                               "reason": "low similarity"}))
    pin_command(ct, d / "geometry.json", REAL_PLAN, case.implant.id, [shots[0], (shots[1][0], d / "failed.json")],
                d / "dev2.json", overlay_path=d / "ov2.png")
    doc = json.loads((d / "dev2.json").read_text())
    assert not doc["shots"][1]["registration_ok"] and "registration failed" in doc["shots"][1]["error"]
    assert doc["deviation_3d"] is None and "shot 2" in doc["deviation_3d_refused"]


def test_nearly_same_direction_is_refused(files):
    d, case, shots, ct = files
    doc = pin_command(ct, d / "geometry.json", REAL_PLAN, case.implant.id, [shots[1], shots[1]],
                      d / "dev3.json")["doc"]
    assert doc["deviation_3d"] is None and "apart" in doc["deviation_3d_refused"]


def test_unknown_implant(files):
    d, case, shots, ct = files
    with pytest.raises(InputError, match="L7"):
        pin_command(ct, d / "geometry.json", REAL_PLAN, "L7", shots[:1], d / "x.json")


def test_axis_outside_field_of_view(files):
    d, case, shots, ct = files
    m = case.shots[0].pose.matrix.copy()
    m[0, 3] += 400.0  # the C-arm moved 400 mm sideways
    save_pose(Pose(m), d / "far.json")
    with pytest.raises(InputError, match="outside the field of view"):
        pin_command(ct, d / "geometry.json", REAL_PLAN, case.implant.id, [(shots[0][0], d / "far.json")],
                    d / "x.json")


def test_bad_shot_count(files):
    d, case, shots, ct = files
    with pytest.raises(InputError, match="one or two shots"):
        pin_command(ct, d / "geometry.json", REAL_PLAN, case.implant.id, shots * 2, d / "x.json")
