"""Post-op CT evaluation on synthetic post-op CTs made from the real 3 mm CT.

Known truth (tests/postop/postop_cases.py): implants burnt in at positions perturbed from the
plan (apex shifts of 2-12 mm, tilts of 1.5-5 deg), the whole CT moved by a known rigid
motion (case B also in other scanner coordinates). The evaluation must recover the
apex deviation within 1 mm and the angle within 1 degree.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from or_assist.core.ct.load import crop_ct, save_ct
from or_assist.core.pose import rotation_angle_deg
from or_assist.planning.measure import implant_surface_distance_mm
from or_assist.errors import InputError
from or_assist.cli.postop import format_case_table, format_evaluation
from or_assist.postop.evaluate import EVALUATION_SCHEMA, evaluate_case, evaluate_files
from tests.postop import postop_cases as pc


@pytest.mark.parametrize("name", ["A", "B"])
def test_registration_recovers_the_known_motion(name):
    reg = pc.evaluation(name).registration
    true = pc.case(name)[2]
    assert reg.success and reg.bone_dice > 0.7
    assert rotation_angle_deg(reg.T_preop_from_postop.rotation, true.rotation) < 0.5
    apexes = np.array([i.apex_lps_mm for i in pc.plan().implants])
    moved = true.inverse().apply(apexes)                          # where the apexes are in the post-op CT
    err = np.linalg.norm(reg.T_preop_from_postop.apply(moved) - apexes, axis=1)
    assert err.max() < 0.5, err


@pytest.mark.parametrize("name", ["A", "B"])
def test_deviation_and_angle_recovered(name):
    ev = pc.evaluation(name)
    placed = pc.case(name)[1]
    assert [i.id for i in ev.implants] == ["R1", "R2", "R3"]
    for got, imp in zip(ev.implants, placed):
        apex_dev, angle, entry_dev = pc.true_deviation(imp)
        assert got.found and got.fitted_item == imp.item.id, got
        assert abs(got.apex_deviation_mm - apex_dev) < 1.0, (got.id, got.apex_deviation_mm, apex_dev)
        assert abs(got.angle_deg - angle) < 1.0, (got.id, got.angle_deg, angle)
        assert abs(got.entry_deviation_mm - entry_dev) < 1.5, (got.id, got.entry_deviation_mm, entry_dev)
        assert np.linalg.norm(got.apex_lps_mm - imp.apex_lps_mm) < 1.0


def test_hip_prosthesis_is_ignored_not_matched():
    ev = pc.evaluation("A")
    assert ev.ignored_metal and all(m["distance_mm"] > 100 for m in ev.ignored_metal)
    assert all(m["centroid_lps_mm"][0] > 60 for m in ev.ignored_metal)      # patient's left hip
    assert not ev.extra and not ev.warnings
    assert "ignored 1 metal object" in format_case_table(ev)


def test_breach_of_the_s2_foramen_detected():
    ev = pc.evaluation("B")
    placed = {i.id: i for i in pc.case("B")[1]}
    lm = next(lm for lm in pc.plan().landmarks if lm.name == "S2 foramen right")
    r3 = next(i for i in ev.implants if i.id == "R3")
    true_clearance = implant_surface_distance_mm(placed["R3"], lm.position_lps_mm) - lm.radius_mm
    assert true_clearance < 0
    assert r3.breach is True and r3.nearest_landmark == "S2 foramen right"
    assert abs(r3.clearance_mm - true_clearance) < 1.0
    assert all(i.breach is False for i in ev.implants if i.id != "R3")
    assert "BREACH S2 foramen right" in format_case_table(ev)


def test_more_implants_than_planned_reported():
    ev = pc.evaluation("B")
    assert len(ev.extra) == 1 and ev.extra[0]["nearest_planned"] == "R3"
    assert np.linalg.norm(np.array(ev.extra[0]["apex_lps_mm"]) - [-40.0, -82.0, 184.0]) < 2.0
    assert any("4 implants found near the plan but 3 planned" in w for w in ev.warnings)
    assert "EXTRA implant (not in the plan)" in format_case_table(ev)


def test_postop_without_implants_is_a_clear_error():
    with pytest.raises(InputError, match="no implant metal .* near the planned implants.*ignored"):
        evaluate_case(pc.plan(), pc.case("none")[0], pc.real_ct())


def test_postop_not_overlapping_the_preop_is_a_clear_error():
    chest = crop_ct(pc.real_ct(), [-160.0, -280.0, 330.0], [160.0, -20.0, 430.0])   # above the pelvis
    with pytest.raises(InputError, match="does not overlap the pre-op CT around the planned implants"):
        evaluate_case(pc.plan(), chest, pc.real_ct())


def test_plan_without_implants_is_a_clear_error():
    from dataclasses import replace
    empty = replace(pc.plan(), implants=[])
    with pytest.raises(InputError, match="no implants"):
        evaluate_case(empty, pc.case("A")[0], pc.real_ct())


def test_evaluate_files_prints_table_and_writes_json(tmp_path):
    post = tmp_path / "postop.nii.gz"
    save_ct(pc.case("A")[0], post)
    out = tmp_path / "eval.json"
    result = evaluate_files(pc.PLAN_PATH, post, out_path=out)
    assert result.written == out and result.warnings == [] and len(result.case.found()) == 3
    text = format_evaluation(result)
    assert "R1" in text and "apex dev mm" in text and f"wrote {out}" in text
    doc = json.loads(out.read_text())
    assert doc["schema"] == EVALUATION_SCHEMA
    assert doc["summary"]["found"] == 3 and doc["summary"]["planned"] == 3
    ref = {i.id: i.apex_deviation_mm for i in pc.evaluation("A").implants}
    for row in doc["implants"]:                       # same as in memory (int16 round trip of the CT)
        assert abs(row["apex_deviation_mm"] - ref[row["id"]]) < 0.2
    assert len(doc["registration"]["T_preop_from_postop"]) == 4
