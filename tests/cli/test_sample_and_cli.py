"""The built-in sample case and the `or-assist` commands end to end (real files, real subprocesses)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from or_assist.cli import main
from or_assist.core.plan import load_plan
from or_assist.cli.plan import format_plan_check
from or_assist.planning.checks import check_plan_file
from or_assist.sim.sample import build_sample_data


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return build_sample_data(tmp_path_factory.mktemp("sample"))


def test_sample_plan_is_clinical_and_passes(sample):
    plan = load_plan(sample["plan"])
    assert [i.level for i in plan.implants] == ["S1", "S1", "S2"]
    assert {i.side for i in plan.implants} == {"left"}
    report = check_plan_file(sample["plan"])
    text = format_plan_check(report)
    assert report.exit_code == 0, text
    assert "0 of 15 checks failed" in text


def _write_variant(sample, tmp_path, change):
    doc = json.loads(sample["plan"].read_text())
    doc["ct"]["path"] = str(sample["ct"])
    change(doc)
    path = tmp_path / "variant.json"
    path.write_text(json.dumps(doc))
    return path


def test_plan_check_cli_names_planted_failures(sample, tmp_path, capsys):
    def apex_outside_bone(doc):  # push L1's apex 40 mm anterior, into the pelvis
        imp = doc["implants"][0]
        imp["apex_lps_mm"] = (np.array(imp["apex_lps_mm"]) + [0, -40, 0]).tolist()
        imp["item"] = "T7-65"
    path = _write_variant(sample, tmp_path, apex_outside_bone)
    assert main(["plan-check", str(path)]) == 1
    out = capsys.readouterr().out
    assert any(line.startswith("L1") and "in_bone" in line and "FAIL" in line for line in out.splitlines()), out

    def into_foramen(doc):  # drive L2's apex into the left S1 foramen
        foramen = next(lm for lm in doc["landmarks"] if lm["kind"] == "s1_foramen" and lm["side"] == "left")
        imp = doc["implants"][1]
        entry = np.array(imp["entry_lps_mm"])
        apex = np.array(foramen["position_lps_mm"])
        imp["apex_lps_mm"] = apex.tolist()
        length = np.linalg.norm(apex - entry)
        imp["item"] = f"T7-{int(5 * round(length / 5))}"
    path = _write_variant(sample, tmp_path, into_foramen)
    assert main(["plan-check", str(path)]) == 1
    out = capsys.readouterr().out
    assert any(line.startswith("L2") and "clearance" in line and "FAIL" in line for line in out.splitlines()), out


@pytest.mark.parametrize("argv, message", [
    (["info", "/no/such/ct.nii.gz"], "/no/such/ct.nii.gz"),
    (["plan-check", "/no/such/plan.json"], "/no/such/plan.json: file not found"),
    (["geometry", "no_such_carm"], "unknown C-arm profile"),
    (["views", "/no/such/plan.json", "--geometry", "/no/g.json", "--out", "/tmp/v"], "/no/such/plan.json"),
    (["simulate", "/no/such/ct.nii.gz", "--pose", "p.json", "--geometry", "g.json", "--out", "s.png"],
     "/no/such/ct.nii.gz"),
    (["calibrate", "/no/such/bead.png", "--phantom", "bead_grid_two_plane", "--out", "/tmp/g.json"],
     "/no/such/bead.png"),
    (["evaluate", "--plan", "/no/such/plan.json", "--postop", "/no/such/post.nii.gz"], "/no/such/"),
    (["sources", "--probe", "/no/such/video.mp4"], "/no/such/video.mp4"),
    (["report", "/no/such/case"], "/no/such/case"),
    (["register", "--ct", "/no/such/ct.nii.gz", "--geometry", "g.json", "--image", "s.png", "--init", "p.json",
      "--out", "/tmp/r.json"], "not found"),
    (["plan", "/no/such/ct.nii.gz"], "/no/such/ct.nii.gz"),
    (["pin", "--ct", "/no/such/ct.nii.gz", "--geometry", "g.json", "--plan", "p.json", "--implant", "R1",
      "--shot", "s.png", "pose.json", "--out", "/tmp/d.json"], "file not found"),
    (["export", "/no/such/case", "/tmp/out"], "/no/such/case"),
    (["cases", "--root", "/no/such/root"], "/no/such/root"),
])
def test_cli_bad_input_is_one_clear_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("or-assist: error:") and message in err and "Traceback" not in err


def test_cli_info_on_both_shared_files(real_ct_path, dicom_dir):
    for path, size in ((real_ct_path, "122 x 101 x 112"), (dicom_dir, "512 x 512 x 20")):
        out = subprocess.run([sys.executable, "-m", "or_assist.cli", "info", str(path)],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert size in out.stdout and "HU range" in out.stdout and "series UID" in out.stdout


def test_cli_geometry_and_view_pose(sample, tmp_path):
    from or_assist.core.carm import carm_angles_from_pose
    from or_assist.core.geometry import load_geometry
    from or_assist.core.pose import load_pose

    g = tmp_path / "g.json"
    assert main(["geometry", "siemens_cios_fusion", "--size", "256", "--out", str(g)]) == 0
    assert load_geometry(g).image_size_px == (256, 256)
    p = tmp_path / "p.json"
    assert main(["view-pose", str(sample["plan"]), "--implant", "L2", "--view", "outlet",
                 "--geometry", str(g), "--tilt-deg", "40", "--out", str(p)]) == 0
    assert carm_angles_from_pose(load_pose(p), "prone").tilt_deg == pytest.approx(40)
    assert main(["view-pose", str(sample["plan"]), "--implant", "X9", "--view", "outlet"]) == 2
