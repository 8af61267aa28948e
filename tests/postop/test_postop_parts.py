"""Parts of the post-op evaluation: prism model, segmentation, matching helpers, cohort."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from or_assist.core.ct.volume import CTVolume
from or_assist.core.plan import implant_mesh
from or_assist.errors import InputError
from or_assist.postop.cohort import (
    evaluate_cohort,
    cohort_summary,
    parse_case_argument,
    read_cohort_file,
    CohortCase,
)
from or_assist.cli.postop import format_cohort_table
from or_assist.postop.prism_fit import prism_planes, roll_about_axis_rad
from or_assist.postop.segment import find_metal_objects, item_centroid_from_entry_mm
from or_assist.sim.postop_ct import implant_fraction_volume, perturbed_implant
from tests.postop import postop_cases as pc


def test_prism_planes_bound_the_implant_mesh():
    imp = pc.plan().implant("R1")
    from or_assist.core.plan import implant_vertex_directions
    roll = roll_about_axis_rad(imp.axis_unit, implant_vertex_directions(imp)[0])
    n, d = prism_planes(imp.apex_lps_mm, imp.axis_unit, roll, imp.item, imp.length_mm)
    v, _ = implant_mesh(imp)
    sd = v @ n.T - d
    assert np.all(sd <= 1e-6)                               # every mesh vertex inside or on the planes
    assert np.all(np.sum(np.abs(sd) < 1e-6, axis=0) >= 3)   # every plane carries >= 3 vertices (a face)


def test_centroid_offset_of_a_tapered_prism():
    item = pc.plan().implant("R1").item                         # 45 mm, 5 mm taper
    assert item_centroid_from_entry_mm(item) == pytest.approx((40 * 20 + 5 / 3 * (40 + 1.25)) / (40 + 5 / 3))


def test_metal_objects_on_a_synthetic_grid():
    imp = perturbed_implant(pc.plan().implant("R2"), [0.0, 0.0, 0.0], 0.0)
    grid = CTVolume(np.zeros((30, 30, 30), np.float32), [-80.0, -120.0, 190.0], [2.0, 2.0, 2.0], np.eye(3))
    hu = np.minimum(100.0 + implant_fraction_volume(grid, [implant_mesh(imp)], 6) * 9000.0, 3071.0)
    objs = find_metal_objects(CTVolume(hu.astype(np.float32), grid.origin_mm, grid.spacing_mm, grid.direction))
    assert len(objs) == 1
    o = objs[0]
    assert np.degrees(np.arccos(abs(o.axis_unit @ imp.axis_unit))) < 2.0
    assert abs(o.extent_mm - imp.item.length_mm) < 4.0
    assert o.distance_to_line_mm(imp.apex_lps_mm[None, :])[0] < 1.0


def test_no_metal_gives_no_objects():
    ct = CTVolume(np.full((8, 8, 8), 300.0, np.float32), [0, 0, 0], [3, 3, 3], np.eye(3))
    assert find_metal_objects(ct) == []


@pytest.mark.parametrize("text", ["plan.json", "a:b:c:d", ":post.nii"])
def test_bad_case_argument(text):
    with pytest.raises(InputError, match="expected PLAN:POSTOP"):
        parse_case_argument(text, 0)


def test_cohort_file_parsing_and_errors(tmp_path):
    f = tmp_path / "cohort.csv"
    f.write_text("# cases in operation order\ncase,plan,postop\n01,p1.json,ct1\n02,/abs/p2.json,ct2\n")
    cases = read_cohort_file(f)
    assert [c.case_id for c in cases] == ["01", "02"]
    assert cases[0].plan_path == tmp_path / "p1.json" and str(cases[1].plan_path) == "/abs/p2.json"
    f.write_text("plan,ct\np1.json,ct1\n")
    with pytest.raises(InputError, match="missing postop"):
        read_cohort_file(f)
    f.write_text("case,plan,postop\n01,p,c\n01,p,c\n")
    with pytest.raises(InputError, match="duplicate case names 01"):
        read_cohort_file(f)
    with pytest.raises(InputError, match="cohort file not found"):
        read_cohort_file(tmp_path / "nope.csv")


def test_cohort_summary_mean_sd_and_learning_curve(tmp_path):
    a, b = pc.evaluation("A"), pc.evaluation("B")
    results = [(CohortCase("01", pc.PLAN_PATH, tmp_path), a), (CohortCase("02", pc.PLAN_PATH, tmp_path), b),
               (CohortCase("03", pc.PLAN_PATH, tmp_path), "post: no implant metal"),
               (CohortCase("04", pc.PLAN_PATH, tmp_path), a)]
    s = cohort_summary(results)
    devs = [i.apex_deviation_mm for e in (a, b, a) for i in e.implants]
    assert s["apex_deviation_mm"]["n"] == 9
    assert s["apex_deviation_mm"]["mean"] == pytest.approx(np.mean(devs))
    assert s["apex_deviation_mm"]["sd"] == pytest.approx(np.std(devs, ddof=1))
    assert s["learning_curve"]["cases"] == 3 and s["breaches"] == 1
    text = format_cohort_table(s)
    assert "ERROR" in text and "+-" in text and "learning curve" in text
    from or_assist.postop.cohort import draw_learning_curve
    png = draw_learning_curve(s, tmp_path / "lc.png")
    img = cv2.imread(str(png))
    assert img.shape == (620, 900, 3) and (img < 250).any()


def test_evaluate_cohort_lists_a_failing_case_and_writes_files(tmp_path):
    from or_assist.core.ct.load import save_ct
    post = tmp_path / "a.nii.gz"
    save_ct(pc.case("A")[0], post)
    cohort = evaluate_cohort(tmp_path / "out", pairs=[f"{pc.PLAN_PATH}:{post}",
                                                      f"{pc.PLAN_PATH}:{tmp_path / 'missing.nii'}"])
    assert [p.name for p in cohort.written] == ["cohort.json", "cohort_implants.csv", "learning_curve.png"]
    text = format_cohort_table(cohort.summary)
    assert "ERROR" in text and "no such file" in text
    doc = json.loads((tmp_path / "out" / "cohort.json").read_text())
    assert doc["schema"] == "or_assist.postop_cohort/1" and doc["summary"]["apex_deviation_mm"]["n"] == 3
    assert (tmp_path / "out" / "learning_curve.png").is_file()
    rows = (tmp_path / "out" / "cohort_implants.csv").read_text().splitlines()
    assert rows[0].startswith("order,case,implant") and len(rows) == 4


def test_evaluate_cohort_without_cases_or_all_failing(tmp_path):
    with pytest.raises(InputError, match="no cases"):
        evaluate_cohort(tmp_path)
    with pytest.raises(InputError, match="every case failed"):
        evaluate_cohort(tmp_path, pairs=[f"{pc.PLAN_PATH}:{tmp_path / 'missing.nii'}"])
