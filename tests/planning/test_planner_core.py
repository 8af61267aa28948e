"""Qt-free planner core: reslicing, the edit model, live distances, live views, proposals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from or_assist.core.ct.load import load_ct
from or_assist.core.ct.volume import CTVolume
from or_assist.core.plan import Plan, load_plan, save_plan
from or_assist.core.catalogue import load_catalogue
from or_assist.planning.edit import PlanEditor
from or_assist.planning.save import check_pelvis_ct, save_plan_checked
from or_assist.planning.snap import snap_length
from or_assist.planning.measure import anterior_cortex_distance_mm, distance_status, implant_measurements
from or_assist.planning.propose import propose_plan_implants
from or_assist.planning.reslice import oblique_planes, orthogonal_plane, reslice, window_image
from or_assist.errors import InputError
from or_assist.sim.phantom.make import phantom_implant_targets, sample_ct_path
from or_assist.render.plan_live import LiveViews, view_tilts_deg
from tests.conftest import TEST_DATA


@pytest.fixture(scope="module")
def phantom_ct():
    return load_ct(sample_ct_path())


@pytest.fixture(scope="module")
def real_plan_ct(real_ct_path):
    plan = load_plan(TEST_DATA / "real_ct_plan.json")
    return plan, load_ct(real_ct_path)


# --------------------------------------------------------------------------- reslice

@pytest.mark.parametrize("kind", ["axial", "coronal", "sagittal"])
def test_orthogonal_slice_samples_the_ct_at_its_pixels(real_plan_ct, kind):
    _, ct = real_plan_ct                                  # direction diag(-1, -1, 1): flipped axes
    cursor = np.array([-30.0, -100.0, 220.0])
    plane = orthogonal_plane(ct, kind, cursor)
    img = reslice(ct, plane)
    assert img.shape == plane.shape
    c, r, d = plane.lps_to_pixel(cursor)
    assert abs(d) < 1e-9                                  # the plane passes through the crosshair
    p = plane.pixel_to_lps(17, 23)
    assert np.allclose(plane.lps_to_pixel(p)[:2], (17, 23))
    assert img[23, 17] == pytest.approx(float(ct.sample_hu(p)), abs=1e-3)


def test_radiological_orientation(phantom_ct):
    plane = orthogonal_plane(phantom_ct, "axial", [0.0, 0.0, 0.0])
    left = plane.lps_to_pixel([50.0, 0.0, 0.0])[0]        # patient left is on screen right
    post = plane.lps_to_pixel([0.0, 50.0, 0.0])[1]        # posterior is down
    centre_c, centre_r, _ = plane.lps_to_pixel([0.0, 0.0, 0.0])
    assert left > centre_c and post > centre_r
    cor = orthogonal_plane(phantom_ct, "coronal", [0.0, 0.0, 0.0])
    assert cor.lps_to_pixel([0.0, 0.0, 50.0])[1] < cor.lps_to_pixel([0.0, 0.0, 0.0])[1]   # head up


def test_oblique_planes_follow_the_implant():
    entry, apex = np.array([80.0, 20.0, -3.0]), np.array([30.0, 0.0, 1.0])
    along, across = oblique_planes(entry, apex, apex, roll_deg=30.0)
    axis = (apex - entry) / np.linalg.norm(apex - entry)
    assert np.allclose(along.u_axis, axis)
    assert np.allclose(across.normal, axis)
    assert np.allclose(across.centre_lps_mm, apex)        # cursor at the apex
    for pl in (along, across):
        assert abs(pl.u_axis @ pl.v_axis) < 1e-12
    _, _, d = along.lps_to_pixel(np.stack([entry, apex]))
    assert np.allclose(d, 0.0)
    with pytest.raises(InputError, match="coincide"):
        oblique_planes(entry, entry)


def test_window_presets():
    hu = np.array([[-1000.0, 40.0, 2000.0]])
    assert window_image(hu, "soft tissue").tolist() == [[0, 127, 255]]
    assert window_image(hu, "bone")[0, 0] == 0
    with pytest.raises(InputError, match="unknown window preset 'lung'"):
        window_image(hu, "lung")


# --------------------------------------------------------------------------- edit model

def test_snap_suggests_and_clamps_lengths():
    cat = load_catalogue()
    s = snap_length(cat, "T7", [0, 0, 0], [47.0, 0, 0])
    assert s.item.id == "T7-45" and np.allclose(s.apex_lps_mm, [45, 0, 0]) and not s.message
    s = snap_length(cat, "T7", [0, 0, 0], [130.0, 0, 0])
    assert s.item.id == "T7-90" and "longer than any T7 implant" in s.message
    with pytest.raises(InputError, match="unknown implant family 'T9'"):
        snap_length(cat, "T9", [0, 0, 0], [40.0, 0, 0])
    with pytest.raises(InputError, match="same point"):
        snap_length(cat, "T7", [0, 0, 0], [0, 0, 0])


def test_editor_undo_redo_and_bad_points(phantom_ct):
    ed = PlanEditor(phantom_ct)
    changes = []
    ed.add_listener(changes.append)
    t = phantom_implant_targets("right")[0]
    imp, note = ed.add_implant(t["entry_lps_mm"], t["apex_lps_mm"])
    assert (imp.id, imp.side, imp.item.id, note) == ("R1", "right", "T7-55", "")
    ed.set_length("R1", 50)
    ed.set_roll("R1", 130.0)
    assert ed.implant("R1").roll_deg == pytest.approx(10.0)        # triangle symmetry: modulo 120
    ed.rename_implant("R1", "R7")
    assert [i.id for i in ed.implants] == ["R7"]
    assert ed.undo() == "rename R1 to R7" and ed.implant("R1").roll_deg == pytest.approx(10.0)
    ed.undo()
    ed.undo()
    assert ed.implant("R1").item.id == "T7-55"
    assert ed.redo() == "R1 length 50 mm" and ed.implant("R1").item.id == "T7-50"
    assert len(changes) == 8                                      # 4 edits, 3 undos, 1 redo
    with pytest.raises(InputError, match="outside the CT volume"):
        ed.add_landmark("s1_foramen", [0.0, 0.0, 500.0])
    with pytest.raises(InputError, match="already used"):
        ed.add_implant(t["entry_lps_mm"], t["apex_lps_mm"], implant_id="R1")
    assert [i.id for i in ed.implants] == ["R1"]                  # nothing changed by the refusals
    ed.delete_implant("R1")
    assert not ed.implants and ed.can_undo


def test_save_checked_refuses_other_ct_and_non_plans(phantom_ct, tmp_path):
    ed = PlanEditor(phantom_ct)
    ed.add_landmark("sacral_promontory", [0.0, -21.5, 0.9])
    other = tmp_path / "other.json"
    save_plan(Plan(Path("/x/ct.nii.gz"), "cd" * 32, []), other)
    before = other.read_bytes()
    with pytest.raises(InputError, match="plan of another CT"):
        ed.save(other)
    assert other.read_bytes() == before and ed.modified
    junk = tmp_path / "notes.json"
    junk.write_text("{\"hello\": 1}")
    with pytest.raises(InputError, match="not a readable plan"):
        ed.save(junk)
    assert junk.read_text() == "{\"hello\": 1}"
    out = ed.save(tmp_path / "mine.json")
    assert load_plan(out).ct_sha256 == phantom_ct.voxel_sha256() and not ed.modified
    ed.save(out)                                                   # overwriting its own plan is fine
    with pytest.raises(InputError, match="is not the open CT"):
        save_plan_checked(Plan(None, "ef" * 32, []), tmp_path / "x.json", phantom_ct.voxel_sha256())


def test_editor_refuses_a_plan_of_another_ct(phantom_ct):
    with pytest.raises(InputError, match="different CT"):
        PlanEditor(phantom_ct, Plan(None, "ab" * 32, []))


@pytest.mark.parametrize("shape, spacing, message", [
    ((40, 40, 40), 1.0, "extent 40 x 40 x 40 mm"),
    ((2, 300, 300), 1.0, "cranio-caudal 2 mm < 40 mm"),
])
def test_non_pelvis_ct_is_refused(shape, spacing, message):
    ct = CTVolume(np.zeros(shape, np.float32), [0, 0, 0], [spacing] * 3, np.eye(3), source="small.nii.gz")
    with pytest.raises(InputError, match=f"small.nii.gz: not a pelvis-sized CT volume.*{message}"):
        check_pelvis_ct(ct)


def test_real_ct_is_pelvis_sized(real_plan_ct):
    assert np.allclose(check_pelvis_ct(real_plan_ct[1]), [366, 303, 336])


# --------------------------------------------------------------------------- measurements and live views

def test_distances_and_anterior_cortex(real_plan_ct):
    plan, ct = real_plan_ct
    rows = implant_measurements(plan, ct, "R1")
    assert rows[0].kind == "anterior_cortex" and 0.0 < rows[0].distance_mm < 10.0
    d, point = anterior_cortex_distance_mm(ct, plan.implant("R1"))
    assert point[1] < plan.implant("R1").apex_lps_mm[1]           # the cortex lies anterior (-y)
    # moving the implant 8 mm anteriorly brings the cortex closer by about that much
    import dataclasses
    imp = plan.implant("R1")
    moved = dataclasses.replace(imp, entry_lps_mm=imp.entry_lps_mm - [0, 4, 0], apex_lps_mm=imp.apex_lps_mm - [0, 4, 0])
    d2, _ = anterior_cortex_distance_mm(ct, moved)
    assert d2 < d - 2.0
    assert [distance_status(x) for x in (None, 1.0, 3.0, 6.0)] == ["none", "bad", "warn", "ok"]
    by_kind = {m.kind: m.status for m in rows}
    assert by_kind["si_joint"] == "info"


def test_live_views_reduced_and_full(real_plan_ct):
    plan, ct = real_plan_ct
    live = LiveViews(ct)
    views = live.render_all(plan, "R1", reduced=True)
    assert set(views) == {"lateral", "inlet", "outlet", "axis"}
    for v in views.values():
        assert v.image.shape == (128, 128) and v.image.dtype == np.uint8 and len(v.outlines) == 3
        assert v.image.std() > 10
    full = live.render(plan, "R1", "lateral", reduced=False)
    assert full.image.shape == (512, 512)
    # the active implant's outline sits on dark (metal) pixels
    o = next(x for x in views["lateral"].outlines if x.id == "R1")
    c = np.round(o.centroid_px).astype(int)
    assert views["lateral"].image[c[1], c[0]] < np.median(views["lateral"].image)
    no_implant = live.render(Plan(None, None, [], list(plan.landmarks)), None, "inlet")
    assert no_implant.outlines == ()
    with pytest.raises(InputError, match="axis view needs an implant"):
        live.render(plan, None, "axis")
    inlet, outlet, src = view_tilts_deg(plan, 20.0, 40.0, derive=True)
    assert "derived" in src and (inlet, outlet) != (20.0, 40.0)


# --------------------------------------------------------------------------- assisted planning

def test_proposal_passes_the_checks_on_the_phantom(phantom_ct):
    from or_assist.core.plan import Landmark
    from or_assist.sim.phantom.make import phantom_landmarks
    lms = [Landmark(lm["name"], lm["kind"], lm["side"], lm["position_lps_mm"], lm["radius_mm"])
           for lm in phantom_landmarks() if lm["kind"] in ("s1_foramen", "s2_foramen", "alar_line", "spinal_canal")]
    prop = propose_plan_implants(Plan(None, phantom_ct.voxel_sha256(), [], lms), phantom_ct, sides=["left"])
    assert [i.id for i in prop.implants] == ["L1", "L2", "L3"]
    assert [i.level for i in prop.implants] == ["S1", "S1", "S2"]
    assert prop.all_passed, prop.summary
    assert len(prop.checks) == 15


def test_proposal_on_the_real_ct_right_side(real_plan_ct):
    plan, ct = real_plan_ct
    base = Plan(plan.ct_path, plan.ct_sha256, [], list(plan.landmarks))
    prop = propose_plan_implants(base, ct, sides=["right"])
    assert [i.id for i in prop.implants] == ["R1", "R2", "R3"]
    assert prop.all_passed, prop.summary


def test_proposal_needs_an_s1_foramen(phantom_ct):
    with pytest.raises(InputError, match="needs at least one S1 foramen"):
        propose_plan_implants(Plan(None, None, []), phantom_ct)
