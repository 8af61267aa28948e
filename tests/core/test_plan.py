"""Tests of the plan model: catalogue, implants, landmarks, JSON I/O, implant mesh."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from or_assist.core.catalogue import DEFAULT_CATALOGUE_PATH, CatalogueItem, load_catalogue
from or_assist.core.ct.load import save_ct
from or_assist.core.ct.volume import CTVolume
from or_assist.core.plan import (Implant, Landmark, Plan, ViewSpec, check_implants_in_ct, default_views,
                                 implant_mesh, implant_vertex_directions, load_plan, load_plan_ct,
                                 plan_from_dict, plan_to_dict, save_plan)
from or_assist.errors import InputError, SchemaError

CAT = load_catalogue()


def small_ct(fill_hu: float = 40.0) -> CTVolume:
    """A 100 x 80 x 60 mm box of soft tissue with air at the border, 2 mm voxels."""
    hu = np.full((30, 40, 50), -1000.0, dtype=np.float32)
    hu[2:-2, 2:-2, 2:-2] = fill_hu
    return CTVolume(hu, origin_mm=(0.0, 0.0, 0.0), spacing_mm=(2.0, 2.0, 2.0), direction=np.eye(3),
                    source="small")


def make_plan(ct_path=None, sha=None) -> Plan:
    implants = [
        Implant("L1", "left", CAT.item("T7-45"), [70.0, 40.0, 40.0], [25.0, 40.0, 40.0], 0.0, "S1"),
        Implant("L2", "left", CAT.item("T4-40"), [70.0, 60.0, 25.0], [30.0, 60.0, 25.0], 15.0, "S2"),
    ]
    landmarks = [Landmark("S1 foramen left", "s1_foramen", "left", [20.0, 30.0, 40.0], 4.0),
                 Landmark("promontory", "sacral_promontory", "midline", [5.0, 20.0, 50.0], 0.0)]
    plan = Plan(ct_path, sha, implants, landmarks, [], CAT)
    plan.views = default_views(plan)
    return plan


def plan_doc() -> dict:
    """A valid plan document (no CT)."""
    return plan_to_dict(make_plan())


def write_doc(tmp_path: Path, doc: dict, name: str = "plan.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- catalogue


def test_default_catalogue_items():
    assert CAT.guide_pin_diameter_mm == 3.2
    assert len(CAT.items) == 26
    assert sorted(i.length_mm for i in CAT.families["T7"]) == list(range(30, 95, 5))
    item = CAT.item("T7-45")
    assert item == CatalogueItem("T7-45", 7.0, 45.0, 5.0)
    assert item.circumradius_mm == 7.0 and item.inscribed_radius_mm == 3.5 and item.family == "T7"
    assert CAT.item("T4-90").inscribed_diameter_mm == 4.0
    doc = json.loads(DEFAULT_CATALOGUE_PATH.read_text())
    assert "unverified" in doc["note"].lower()


def test_nearest_length():
    assert CAT.nearest_length("T7", 47.4).id == "T7-45"
    assert CAT.nearest_length("T7", 47.6).id == "T7-50"
    assert CAT.nearest_length("T7", 47.5).id == "T7-45"      # tie: the shorter
    assert CAT.nearest_length("T4", 10.0).id == "T4-30"
    assert CAT.nearest_length("T4", 200.0).id == "T4-90"


def test_catalogue_unknown_item_lists_valid_ids():
    with pytest.raises(InputError, match=r"unknown implant item 'T9-45'.*T7-30.*T4-90"):
        CAT.item("T9-45")


def test_catalogue_unknown_family():
    with pytest.raises(InputError, match="family_prefix.*'T9'.*T7, T4"):
        CAT.nearest_length("T9", 45.0)


def test_user_catalogue(tmp_path):
    doc = {"schema": "or_assist.catalogue/1", "name": "test", "source": "test", "guide_pin_diameter_mm": 2.8,
           "families": [{"prefix": "X", "inscribed_diameter_mm": 6.0, "lengths_mm": [35, 42.5], "tip_taper_mm": 4}]}
    cat = load_catalogue(write_doc(tmp_path, doc, "cat.json"))
    assert set(cat.items) == {"X-35", "X-42.5"} and cat.guide_pin_diameter_mm == 2.8
    assert cat.item("X-42.5").length_mm == 42.5 and cat.path == tmp_path / "cat.json"


def test_catalogue_unknown_schema(tmp_path):
    path = write_doc(tmp_path, {"schema": "or_assist.catalogue/9", "families": []}, "cat.json")
    with pytest.raises(SchemaError, match=r"cat\.json.*unknown schema 'or_assist.catalogue/9'"):
        load_catalogue(path)


def test_catalogue_missing_field(tmp_path):
    doc = {"schema": "or_assist.catalogue/1", "guide_pin_diameter_mm": 3.2,
           "families": [{"prefix": "X", "lengths_mm": [30]}]}
    with pytest.raises(SchemaError, match=r"cat\.json: families\[0\].*missing field 'inscribed_diameter_mm'"):
        load_catalogue(write_doc(tmp_path, doc, "cat.json"))


def test_catalogue_taper_too_long(tmp_path):
    doc = {"schema": "or_assist.catalogue/1", "guide_pin_diameter_mm": 3.2,
           "families": [{"prefix": "X", "inscribed_diameter_mm": 7, "lengths_mm": [30], "tip_taper_mm": 30}]}
    with pytest.raises(SchemaError, match=r"families\[0\].*tip_taper_mm"):
        load_catalogue(write_doc(tmp_path, doc, "cat.json"))


# ----------------------------------------------------------------------------- implant, plan


def test_implant_properties_and_read_only():
    imp = Implant("R1", "right", CAT.item("T7-50"), [0, 0, 0], [30, 40, 0])
    assert imp.length_mm == pytest.approx(50.0)
    np.testing.assert_allclose(imp.axis_unit, [0.6, 0.8, 0.0])
    with pytest.raises(ValueError):
        imp.entry_lps_mm[0] = 5.0
    assert imp == Implant("R1", "right", CAT.item("T7-50"), (0, 0, 0), (30, 40, 0))
    assert imp != Implant("R1", "right", CAT.item("T7-50"), (0, 0, 0), (30, 40, 1))


@pytest.mark.parametrize("kwargs, match", [
    (dict(side="up"), "side: must be one of left, right, got 'up'"),
    (dict(apex_lps_mm=[0.0, 0.0, 0.0]), "entry and apex are the same point"),
    (dict(entry_lps_mm=[0.0, math.nan, 0.0]), r"entry_lps_mm: must be 3 finite numbers \(LPS mm\), got \[0\.0, nan, 0\.0\]"),
    (dict(apex_lps_mm=[1.0, 2.0]), r"apex_lps_mm: must be 3 finite numbers \(LPS mm\), got \[1\.0, 2\.0\]"),
])
def test_implant_constructor_rejects(kwargs, match):
    args = dict(id="L1", side="left", item=CAT.item("T7-45"), entry_lps_mm=[0.0, 0.0, 0.0],
                apex_lps_mm=[45.0, 0.0, 0.0])
    args.update(kwargs)
    with pytest.raises(InputError, match=match):
        Implant(**args)


def test_plan_implant_lookup_names_valid_ids():
    plan = make_plan()
    assert plan.implant("L2").item.id == "T4-40"
    with pytest.raises(InputError, match="no implant 'R9'.*L1, L2"):
        plan.implant("R9")


def test_plan_constructor_rejects_duplicate_ids():
    imp = Implant("L1", "left", CAT.item("T7-45"), [0, 0, 0], [45, 0, 0])
    with pytest.raises(InputError, match="duplicate implant ids L1"):
        Plan(None, None, [imp, imp])


def test_default_views():
    views = default_views(make_plan())
    assert [v.name for v in views[:4]] == ["L1 lateral", "L1 inlet", "L1 outlet", "L1 axis"]
    assert [(v.kind, v.implant, v.tilt_deg) for v in views[4:]] == [
        ("lateral", "L2", None), ("inlet", "L2", None), ("outlet", "L2", None), ("axis", "L2", None)]
    empty = default_views(Plan(None, None, []))
    assert [v.kind for v in empty] == ["lateral", "inlet", "outlet"] and empty[0].implant is None


def test_round_trip_with_relative_paths(tmp_path):
    ct = small_ct()
    ct_path = save_ct(ct, tmp_path / "data" / "ct.nii.gz")
    cat_path = tmp_path / "cat.json"
    cat_path.write_text(DEFAULT_CATALOGUE_PATH.read_text())
    plan = make_plan(ct_path.resolve(), ct.voxel_sha256())
    plan.catalogue = load_catalogue(cat_path.resolve())
    path = save_plan(plan, tmp_path / "plan.json")
    doc = json.loads(path.read_text())
    assert doc["schema"] == "or_assist.plan/1"
    assert doc["ct"] == {"path": "data/ct.nii.gz", "sha256": ct.voxel_sha256()}
    assert doc["catalogue"] == "cat.json"
    assert doc["implants"][1] == {"id": "L2", "side": "left", "item": "T4-40", "entry_lps_mm": [70.0, 60.0, 25.0],
                                  "apex_lps_mm": [30.0, 60.0, 25.0], "roll_deg": 15.0, "level": "S2"}
    back = load_plan(path)
    assert back.ct_path == ct_path.resolve() and back.ct_sha256 == plan.ct_sha256
    assert back.implants == plan.implants and back.landmarks == plan.landmarks and back.views == plan.views
    assert back.catalogue.path == cat_path.resolve()
    assert back.sha256() == plan.sha256()
    # the plan's hash is about content: a copy elsewhere hashes the same, a moved apex does not
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    assert load_plan(save_plan(back, moved / "p.json")).sha256() == plan.sha256()
    back.implants[0] = Implant("L1", "left", CAT.item("T7-45"), [70.0, 40.0, 40.0], [25.0, 40.0, 40.5])
    assert back.sha256() != plan.sha256()


def test_plan_without_ct_and_absolute_paths(tmp_path):
    plan = make_plan()
    back = load_plan(save_plan(plan, tmp_path / "p.json"))
    assert back.ct_path is None and back.ct_sha256 is None and back.catalogue.path is None
    doc = plan_to_dict(Plan(Path("/data/ct.nii.gz"), "ab" * 32, []), base_dir=tmp_path)
    assert doc["ct"]["path"] == "/data/ct.nii.gz"


def test_plan_load_ct_ok(tmp_path):
    ct = small_ct()
    ct_path = save_ct(ct, tmp_path / "ct.mha")
    loaded, warnings = load_plan_ct(load_plan(save_plan(make_plan(ct_path.resolve(), ct.voxel_sha256()),
                                                        tmp_path / "plan.json")))
    assert warnings == [] and loaded.voxel_sha256() == ct.voxel_sha256()


# ----------------------------------------------------------------------------- bad input


def _bad(tmp_path, mutate) -> Path:
    doc = plan_doc()
    mutate(doc)
    return write_doc(tmp_path, doc)


def test_bad_unknown_schema(tmp_path):
    path = _bad(tmp_path, lambda d: d.update(schema="or_assist.plan/2"))
    with pytest.raises(SchemaError, match=r"plan\.json: unknown schema 'or_assist.plan/2'"):
        load_plan(path)


def test_bad_missing_field(tmp_path):
    path = _bad(tmp_path, lambda d: d["implants"][1].pop("apex_lps_mm"))
    with pytest.raises(SchemaError, match=r"plan\.json: implants\[1\]: missing field 'apex_lps_mm'"):
        load_plan(path)


def test_bad_missing_ct_field(tmp_path):
    path = _bad(tmp_path, lambda d: d.pop("ct"))
    with pytest.raises(SchemaError, match=r"plan\.json: missing field 'ct'"):
        load_plan(path)


def test_bad_length_not_in_catalogue(tmp_path):
    path = _bad(tmp_path, lambda d: d["implants"][0].update(item="T7-47"))
    with pytest.raises(SchemaError, match=r"implants\[0\]: field 'item': 'T7-47' is not in the catalogue.*T7-45"):
        load_plan(path)


def test_bad_unknown_item_id(tmp_path):
    path = _bad(tmp_path, lambda d: d["implants"][1].update(item="ACME-45"))
    with pytest.raises(SchemaError, match=r"plan\.json: implants\[1\]: field 'item': 'ACME-45'"):
        load_plan(path)


def test_bad_entry_equals_apex(tmp_path):
    path = _bad(tmp_path, lambda d: d["implants"][0].update(apex_lps_mm=d["implants"][0]["entry_lps_mm"]))
    with pytest.raises(SchemaError, match=r"implants\[0\]: fields 'entry_lps_mm' and 'apex_lps_mm' are the same"):
        load_plan(path)


def test_bad_nan_in_point(tmp_path):
    path = _bad(tmp_path, lambda d: d["implants"][1].update(entry_lps_mm=[1.0, float("nan"), 2.0]))
    assert "NaN" in path.read_text()
    with pytest.raises(SchemaError, match=r"implants\[1\]: field 'entry_lps_mm' contains NaN"):
        load_plan(path)


def test_bad_nan_in_landmark(tmp_path):
    path = _bad(tmp_path, lambda d: d["landmarks"][0].update(position_lps_mm=[float("nan"), 0, 0]))
    with pytest.raises(SchemaError, match=r"landmarks\[0\]: field 'position_lps_mm' contains NaN"):
        load_plan(path)


def test_bad_duplicate_implant_ids(tmp_path):
    path = _bad(tmp_path, lambda d: d["implants"][1].update(id="L1"))
    with pytest.raises(SchemaError, match=r"implants\[1\]: duplicate implant id 'L1'"):
        load_plan(path)


def test_bad_landmark_kind(tmp_path):
    path = _bad(tmp_path, lambda d: d["landmarks"][1].update(kind="s3_foramen"))
    with pytest.raises(SchemaError, match=r"landmarks\[1\]: field 'kind' must be one of .*si_joint"):
        load_plan(path)


def test_bad_view_names_unknown_implant(tmp_path):
    path = _bad(tmp_path, lambda d: d["views"][0].update(implant="R7"))
    with pytest.raises(SchemaError, match=r"views\[0\]: field 'implant' names 'R7'.*L1, L2"):
        load_plan(path)


def test_bad_missing_catalogue_file(tmp_path):
    path = _bad(tmp_path, lambda d: d.update(catalogue="nowhere/cat.json"))
    with pytest.raises(InputError, match=r"plan\.json: field 'catalogue': .*nowhere/cat\.json: file not found"):
        load_plan(path)


def test_bad_implant_outside_ct(tmp_path):
    ct = small_ct()                                   # box 0..98 x 0..78 x 0..58 mm
    plan = make_plan()
    plan.source = "plan.json"
    check_implants_in_ct(plan, ct)                    # inside: no error
    plan.implants.append(Implant("L3", "left", CAT.item("T7-45"), [70.0, 40.0, 40.0], [70.0, 40.0, 85.0]))
    with pytest.raises(InputError, match=r"plan\.json: implants\[2\]: implant 'L3': field 'apex_lps_mm' "
                                         r"\[70\.0, 40\.0, 85\.0\] lies outside the CT"):
        check_implants_in_ct(plan, ct)


def test_bad_ct_file_missing(tmp_path):
    plan = make_plan(tmp_path / "gone.nii.gz", "0" * 64)
    path = save_plan(plan, tmp_path / "plan.json")
    with pytest.raises(InputError, match=r"plan\.json: ct\.path: CT file not found: .*gone\.nii\.gz"):
        load_plan_ct(load_plan(path))


def test_bad_ct_sha_mismatch_and_override(tmp_path):
    ct = small_ct()
    ct_path = save_ct(small_ct(fill_hu=41.0), tmp_path / "ct.nii.gz")      # not the CT of the plan
    path = save_plan(make_plan(ct_path.resolve(), ct.voxel_sha256()), tmp_path / "plan.json")
    with pytest.raises(InputError, match=r"plan\.json: field 'ct\.sha256' .* does not match the voxel data"):
        load_plan_ct(load_plan(path))
    loaded, warnings = load_plan_ct(load_plan(path), allow_ct_mismatch=True)
    assert loaded.voxel_sha256() != ct.voxel_sha256()
    assert len(warnings) == 1 and "does not match" in warnings[0] and "checking anyway" in warnings[0]


def test_bad_plan_without_ct_for_checks():
    with pytest.raises(InputError, match="plan names no CT"):
        load_plan_ct(plan_from_dict(plan_doc(), "mem"))


# ----------------------------------------------------------------------------- mesh


def _check_closed_outward(verts, faces):
    edges = {}
    for f in faces:
        for a, b in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0])):
            edges[(a, b)] = edges.get((a, b), 0) + 1
    assert all(n == 1 for n in edges.values()), "an edge used twice in the same direction"
    assert all((b, a) in edges for a, b in edges), "an edge without its opposite: mesh not closed"
    tri = verts[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    centre = verts.mean(axis=0)
    assert np.all(np.einsum("ij,ij->i", normals, tri.mean(axis=1) - centre) > 0), "inward face"
    return float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0)


def test_mesh_closed_outward_with_exact_volume():
    imp = Implant("L1", "left", CAT.item("T7-45"), [60.0, 10.0, 5.0], [20.0, 30.0, 10.0], 33.0)
    verts, faces = implant_mesh(imp)
    assert verts.dtype == np.float64 and faces.dtype == np.int32 and verts.shape == (7, 3)
    volume = _check_closed_outward(verts, faces)
    area = 3.0 * math.sqrt(3.0) * 3.5 ** 2                      # triangle of inscribed radius 3.5 mm
    assert volume == pytest.approx(area * (imp.length_mm - 5.0) + area * 5.0 / 3.0, rel=1e-9)
    np.testing.assert_allclose(verts[6], imp.apex_lps_mm)
    radial = verts[:6] - imp.entry_lps_mm
    radial -= np.outer(radial @ imp.axis_unit, imp.axis_unit)
    np.testing.assert_allclose(np.linalg.norm(radial, axis=1), 7.0)


def test_mesh_flat_tip_catalogue():
    item = CatalogueItem("F-40", 4.0, 40.0, 0.0)
    verts, faces = implant_mesh(Implant("L1", "left", item, [0, 0, 0], [0, 0, 40]))
    volume = _check_closed_outward(verts, faces)
    assert volume == pytest.approx(3.0 * math.sqrt(3.0) * 4.0 * 40.0)


def test_roll_reference_and_direction():
    item = CAT.item("T7-45")
    # axis along -x (lateral to medial of a left implant): vertex 0 points posterior (+y) at roll 0
    d0 = implant_vertex_directions(Implant("L1", "left", item, [60, 0, 0], [15, 0, 0], 0.0))
    np.testing.assert_allclose(d0[0], [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(d0 @ d0.T, np.array([[1, -.5, -.5], [-.5, 1, -.5], [-.5, -.5, 1]]), atol=1e-12)
    # positive roll is right-handed about the axis (entry -> apex = -x): +y turns towards -z
    d90 = implant_vertex_directions(Implant("L1", "left", item, [60, 0, 0], [15, 0, 0], 90.0))
    np.testing.assert_allclose(d90[0], np.cross([-1, 0, 0], [0, 1, 0]), atol=1e-12)
    np.testing.assert_allclose(d90[0], [0, 0, -1], atol=1e-12)
    # axis along y: the reference falls back to superior (+z)
    dy = implant_vertex_directions(Implant("L1", "left", item, [0, 0, 0], [0, 45, 0], 0.0))
    np.testing.assert_allclose(dy[0], [0, 0, 1], atol=1e-12)


def test_views_reject_unknown_kind():
    with pytest.raises(InputError, match="kind: must be one of lateral"):
        ViewSpec("x", "oblique")
