"""``or-assist view-pose`` says the planned view's C-arm angles (orbital, tilt) in the
radiographer's words and signs, beside the pose (issue 16, item 6)."""

from __future__ import annotations

import json
import re

import pytest

from or_assist.cli import main
from or_assist.core.carm import carm_angles_from_pose, patient_axes
from or_assist.core.plan import load_plan
from or_assist.core.pose import Pose, load_pose
from tests.conftest import REAL_PLAN

ANGLES = re.compile(r"^(\S+) (\S+): C-arm orbital (?:(LAO|RAO) )?([\d.]+) deg, tilt (?:(CRAN|CAUD) )?([\d.]+) deg "
                    r"\(patient (prone|supine); orbital_deg ([-+][\d.]+), tilt_deg ([-+][\d.]+): LAO / CRAN positive")


def _angles(line: str) -> tuple[float, float, str]:
    m = ANGLES.match(line)
    assert m, line
    orbital = float(m.group(4)) * (-1.0 if m.group(3) == "RAO" else 1.0)
    tilt = float(m.group(6)) * (-1.0 if m.group(5) == "CAUD" else 1.0)
    # the words and the signed numbers say the same
    assert orbital == pytest.approx(float(m.group(8)), abs=0.51) and tilt == pytest.approx(float(m.group(9)), abs=0.51)
    return float(m.group(8)), float(m.group(9)), m.group(7)


@pytest.mark.parametrize("view, orbital, tilt", [("lateral", -90.0, 0.0), ("inlet", 0.0, None), ("outlet", 0.0, None)])
def test_view_pose_prints_the_angles_of_the_pose_it_writes(capsys, tmp_path, view, orbital, tilt):
    plan = load_plan(REAL_PLAN)
    out = tmp_path / "pose.json"
    assert main(["view-pose", str(REAL_PLAN), "--implant", "R1", "--view", view, "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"wrote {out}"
    said_orbital, said_tilt, position = _angles(lines[1])
    assert lines[1].startswith(f"R1 {view}: ") and position == "prone"
    truth = carm_angles_from_pose(load_pose(out), "prone", patient_axes(plan.landmarks))
    assert said_orbital == pytest.approx(truth.orbital_deg, abs=0.051)
    assert said_tilt == pytest.approx(truth.tilt_deg, abs=0.051)
    assert said_orbital == pytest.approx(orbital, abs=0.051)            # R1 is right: detector on the right
    if tilt is not None:
        assert said_tilt == pytest.approx(tilt, abs=0.051)
    if view == "inlet":                                                   # prone inlet: detector towards the feet
        assert said_tilt < -15.0 and "tilt CAUD" in lines[1]
    if view == "outlet":
        assert said_tilt > 25.0 and "tilt CRAN" in lines[1]


def test_view_pose_json_stays_pipeable_and_tilt_option_shows(capsys):
    assert main(["view-pose", str(REAL_PLAN), "--implant", "R2", "--view", "inlet", "--tilt-deg", "30",
                 "--patient-position", "prone"]) == 0
    captured = capsys.readouterr()
    assert isinstance(Pose.from_dict(json.loads(captured.out)), Pose)   # stdout is the pose JSON alone
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "tilt CAUD 30 deg" in err[0]
    assert _angles(err[0])[1] == pytest.approx(-30.0, abs=0.051)
