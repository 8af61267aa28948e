"""Tests of the synthetic pelvis: determinism, HU vs labels, landmarks, implant targets, cache."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
import SimpleITK as sitk

import or_assist.sim.phantom.make as phantom
from or_assist.core.ct.load import check_hu
from or_assist.planning.measure import segment_distance_mm
from or_assist.errors import InputError
from or_assist.sim.phantom.make import (LABELS, PHANTOM_SPACING_MM, make_phantom, phantom_implant_targets,
                               phantom_landmarks, render_preview_png, sample_ct_path)
from or_assist.sim.phantom.pelvis import si_joint

CIRCUMRADIUS_MM = 7.0
BONES = ("sacrum", "ilium_left", "ilium_right", "l5", "l4", "femur")


@pytest.fixture(scope="session")
def vol():
    return make_phantom()


@pytest.fixture(scope="session")
def landmarks():
    return phantom_landmarks()


@pytest.fixture(scope="session")
def targets():
    return {side: phantom_implant_targets(side) for side in ("left", "right")}


def sha(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def labels_near(vol, point, radius_mm=2.0) -> set[str]:
    """Names of the labels of the voxels within ``radius_mm`` of ``point``."""
    g = np.arange(-radius_mm, radius_mm + 1e-6, 0.5)
    offs = np.array([(x, y, z) for x in g for y in g for z in g if x * x + y * y + z * z <= radius_mm ** 2])
    names = {v: k for k, v in LABELS.items()}
    return {names[i] for i in np.unique(vol.label_at(np.asarray(point) + offs))}


def axis_labels(vol, entry, apex, step_mm=0.25, beyond_mm=0.0) -> list[str]:
    """Label names along entry -> apex (extended by ``beyond_mm`` at both ends), runs merged."""
    entry, apex = np.asarray(entry, float), np.asarray(apex, float)
    d = (apex - entry) / np.linalg.norm(apex - entry)
    t = np.arange(-beyond_mm, np.linalg.norm(apex - entry) + beyond_mm + 1e-9, step_mm)
    names = {v: k for k, v in LABELS.items()}
    seq = [names[i] for i in vol.label_at(entry + t[:, None] * d)]
    return [n for k, n in enumerate(seq) if k == 0 or seq[k - 1] != n]


# --------------------------------------------------------------------------- volume


def test_volume_geometry(vol):
    assert vol.hu.dtype == np.float32 and vol.labels.dtype == np.uint8
    assert vol.hu.shape == vol.labels.shape == (168, 176, 253)
    np.testing.assert_array_equal(vol.spacing_mm, [PHANTOM_SPACING_MM] * 3)
    np.testing.assert_array_equal(vol.direction, np.eye(3))
    extent = np.array(vol.hu.shape[::-1]) * vol.spacing_mm
    assert np.all(extent >= [370, 250, 240]) and np.all(extent <= [400, 280, 260])
    # S1's body centre is the origin; the femoral heads are inside the field of view
    assert vol.label_at([[0.0, 0.0, 0.0]])[0] == LABELS["sacrum"]
    assert set(vol.label_at([[84.0, -35.0, -100.0], [-84.0, -35.0, -100.0]])) == {LABELS["femur"]}
    far = vol.origin_mm + vol.spacing_mm * (np.array(vol.hu.shape[::-1]) - 1)
    assert np.all(vol.origin_mm < -150) and np.all(far > 90)


def test_ct_sanity(vol):
    assert check_hu(vol.to_ct()) == []
    assert vol.hu.min() == -1000.0 and vol.hu.max() < 4000.0
    air = vol.hu[vol.labels == LABELS["air"]]
    assert np.all(air <= -500.0) and np.mean(air == -1000.0) > 0.98    # partial volume at the skin
    assert vol.hu[0, 0, 0] == -1000.0 and vol.hu[-1, -1, -1] == -1000.0


def test_deterministic_and_seeded():
    a, b = make_phantom(3.0), make_phantom(3.0)
    assert sha(a.hu) == sha(b.hu) and sha(a.labels) == sha(b.labels)
    c = make_phantom(3.0, seed=1)
    assert sha(c.labels) == sha(a.labels)          # anatomy does not depend on the seed
    assert sha(c.hu) != sha(a.hu)                  # the texture noise does


def test_label_ids():
    required = {"sacrum": 1, "ilium_left": 2, "ilium_right": 3, "si_joint": 4, "l5": 5, "femur": 6,
                "canal": 7, "foramen": 8, "soft": 9, "fat": 10, "gas": 11}
    assert {k: LABELS[k] for k in required} == required
    assert LABELS["air"] == 0
    assert len(set(LABELS.values())) == len(LABELS)


@pytest.mark.parametrize("name, lo, hi", [
    ("fat", -120, -80), ("soft", 10, 70), ("gas", -950, -850), ("canal", 0, 30), ("foramen", -20, 30),
    ("si_joint", 50, 150), ("disc", 60, 120),
])
def test_label_median_hu(vol, name, lo, hi):
    hu = vol.hu[vol.labels == LABELS[name]]
    assert hu.size > 500
    assert lo <= float(np.median(hu)) <= hi


@pytest.mark.parametrize("name", BONES)
def test_bones_have_cortex_and_cancellous_bone(vol, name):
    hu = vol.hu[vol.labels == LABELS[name]]
    p10, p50, p95 = np.percentile(hu, [10, 50, 95])
    assert 200 <= p10 and 200 <= p50 <= 350       # cancellous interior
    assert 1000 <= p95 <= 1700                     # cortical shell


def test_si_joint_gap_between_iliac_and_sacral_cortex(vol):
    """Along the normal through the articular part: ilium cortex | low-density gap | sacral cortex."""
    for sign, ilium in ((1.0, "ilium_left"), (-1.0, "ilium_right")):
        joint = si_joint(sign)
        centre = joint.centre + 0.0 * joint.axis_a - 4.0 * joint.axis_b
        assert joint.is_articular(centre[None])[0]
        t = np.arange(-8.0, 8.01, 0.25)
        pts = centre + t[:, None] * joint.normal
        hu = vol.to_ct().sample_hu(pts)
        labels = vol.label_at(pts)
        gap = np.abs(t) <= 0.5
        assert np.all(labels[gap] == LABELS["si_joint"])
        assert labels[0] == LABELS["sacrum"] and labels[-1] == LABELS[ilium]
        sac_cortex, il_cortex = hu[t < 0].max(), hu[t > 0].max()
        assert sac_cortex > 600 and il_cortex > 600
        assert hu[gap].min() < min(sac_cortex, il_cortex) - 300


@pytest.mark.parametrize("spacing, seed, arg", [
    (0.5, 0, "spacing_mm"), (-1.5, 0, "spacing_mm"), (float("nan"), 0, "spacing_mm"),
    ("1.5", 0, "spacing_mm"), (True, 0, "spacing_mm"), (1.5, -1, "seed"), (1.5, 0.5, "seed"),
])
def test_make_phantom_rejects_bad_arguments(spacing, seed, arg):
    with pytest.raises(InputError, match=arg):
        make_phantom(spacing, seed)


# --------------------------------------------------------------------------- landmarks


def by_kind(landmarks, kind, side=None):
    return [lm for lm in landmarks if lm["kind"] == kind and (side is None or lm["side"] == side)]


def test_landmark_records(landmarks):
    kinds = {"s1_foramen", "s2_foramen", "spinal_canal", "sacral_promontory", "alar_line",
             "s1_endplate_posterior", "s2_anterior_body", "si_joint"}
    assert {lm["kind"] for lm in landmarks} == kinds
    assert len({lm["name"] for lm in landmarks}) == len(landmarks)
    for lm in landmarks:
        assert set(lm) == {"name", "kind", "side", "position_lps_mm", "radius_mm"}
        assert lm["side"] in ("left", "right", "midline")
        assert len(lm["position_lps_mm"]) == 3 and np.all(np.isfinite(lm["position_lps_mm"]))
        assert lm["radius_mm"] >= 0
    for kind in ("s1_foramen", "s2_foramen", "alar_line", "si_joint"):
        assert by_kind(landmarks, kind, "left") and by_kind(landmarks, kind, "right")
    assert len(by_kind(landmarks, "spinal_canal")) == 2
    r1, r2 = by_kind(landmarks, "s1_foramen")[0]["radius_mm"], by_kind(landmarks, "s2_foramen")[0]["radius_mm"]
    assert 4.0 <= r2 < r1 <= 5.0                    # ~8-10 mm channels at S1, smaller at S2


def test_landmarks_are_mirror_symmetric(landmarks):
    left = {lm["name"].replace("left", "X"): lm for lm in landmarks if lm["side"] == "left"}
    right = {lm["name"].replace("right", "X"): lm for lm in landmarks if lm["side"] == "right"}
    assert left.keys() == right.keys()
    for key, lm in left.items():
        p, q = np.array(lm["position_lps_mm"]), np.array(right[key]["position_lps_mm"])
        np.testing.assert_allclose(p * [-1, 1, 1], q, atol=1e-6)


@pytest.mark.parametrize("kind, label", [("s1_foramen", "foramen"), ("s2_foramen", "foramen"),
                                         ("spinal_canal", "canal")])
def test_foramen_and_canal_landmarks_are_low_density(vol, landmarks, kind, label):
    lms = by_kind(landmarks, kind)
    pts = np.array([lm["position_lps_mm"] for lm in lms])
    assert np.all(vol.label_at(pts) == LABELS[label])
    assert np.all(vol.to_ct().sample_hu(pts) < 100)


@pytest.mark.parametrize("kind", ["sacral_promontory", "s1_endplate_posterior", "s2_anterior_body",
                                  "alar_line"])
def test_surface_landmarks_lie_on_the_sacral_surface(vol, landmarks, kind):
    for lm in by_kind(landmarks, kind):
        near = labels_near(vol, lm["position_lps_mm"], 2.0)
        assert "sacrum" in near and near & {"soft", "fat", "disc", "canal"}, (lm["name"], near)
        assert vol.to_ct().sample_hu(np.array([lm["position_lps_mm"]]))[0] > 300


def test_si_joint_landmarks_are_in_the_joint(vol, landmarks):
    for lm in by_kind(landmarks, "si_joint"):
        assert "si_joint" in labels_near(vol, lm["position_lps_mm"], 1.0), lm["name"]


def test_sacral_geometry(landmarks):
    """Sacral slope 35-45 deg (S1 endplate facing anterior-superior); the promontory in front."""
    prom = np.array(by_kind(landmarks, "sacral_promontory")[0]["position_lps_mm"])
    post = np.array(by_kind(landmarks, "s1_endplate_posterior")[0]["position_lps_mm"])
    s2 = np.array(by_kind(landmarks, "s2_anterior_body")[0]["position_lps_mm"])
    v = post - prom
    slope = math.degrees(math.atan2(v[2], v[1]))
    assert 35.0 <= slope <= 45.0
    assert s2[1] > prom[1] and s2[2] < prom[2]      # S2's front is posterior-inferior of S1's
    for lm in by_kind(landmarks, "alar_line"):
        p = np.array(lm["position_lps_mm"])
        assert 25.0 <= abs(p[0]) <= 50.0 and p[1] < 0.0


# --------------------------------------------------------------------------- implants


def test_implant_records(targets):
    for side, ts in targets.items():
        assert [t["id"] for t in ts] == [f"{side[0].upper()}{k}" for k in (1, 2, 3)]
        assert [t["level"] for t in ts] == ["S1", "S1", "S2"]
        for t in ts:
            assert t["inscribed_diameter_mm"] == 7.0
            assert t["length_mm"] in range(30, 95, 5)
            length = np.linalg.norm(np.subtract(t["apex_lps_mm"], t["entry_lps_mm"]))
            assert abs(length - t["length_mm"]) <= 0.5
    for left, right in zip(targets["left"], targets["right"]):
        for key in ("entry_lps_mm", "apex_lps_mm"):
            np.testing.assert_allclose(np.multiply(left[key], [-1, 1, 1]), right[key], atol=1e-6)


@pytest.mark.parametrize("side", ["left", "right"])
def test_implants_enter_ilium_cross_joint_end_in_sacrum(vol, targets, side):
    for t in targets[side]:
        seq = axis_labels(vol, t["entry_lps_mm"], t["apex_lps_mm"], beyond_mm=3.0)
        assert seq[0] in ("soft", "fat") and seq[1] == f"ilium_{side}", (t["id"], seq)
        assert "si_joint" in seq and seq.index("si_joint") > 1, (t["id"], seq)
        assert seq[seq.index("si_joint") + 1] == "sacrum", (t["id"], seq)
        assert vol.label_at([t["apex_lps_mm"]])[0] == LABELS["sacrum"]
        # the entry is on the lateral cortex: bone 1.5 mm in, not bone 1.5 mm out
        d = np.subtract(t["apex_lps_mm"], t["entry_lps_mm"]) / t["length_mm"]
        e = np.array(t["entry_lps_mm"])
        assert vol.label_at([e + 1.5 * d])[0] == LABELS[f"ilium_{side}"]
        assert vol.label_at([e - 1.5 * d])[0] in (LABELS["soft"], LABELS["fat"])
        assert vol.to_ct().sample_hu(np.array([e + 1.0 * d]))[0] > 700


@pytest.mark.parametrize("side", ["left", "right"])
def test_implant_clearances(vol, landmarks, targets, side):
    ts = targets[side]
    # >= 3 mm from the foramen and canal landmark spheres (what the plan checks use)
    for t in ts:
        for lm in landmarks:
            if lm["kind"] in ("s1_foramen", "s2_foramen", "spinal_canal"):
                p = lm["position_lps_mm"]
                gap = segment_distance_mm(t["entry_lps_mm"], t["apex_lps_mm"], p, p) - CIRCUMRADIUS_MM - lm["radius_mm"]
                assert gap >= 3.0, (t["id"], lm["name"], gap)
    # and from every voxel labelled foramen or canal (voxel centres: up to 1.3 mm inside)
    zyx = np.argwhere(np.isin(vol.labels, [LABELS["foramen"], LABELS["canal"]]))
    pts = vol.origin_mm + zyx[:, ::-1] * vol.spacing_mm
    for t in ts:
        e, a = np.array(t["entry_lps_mm"]), np.array(t["apex_lps_mm"])
        v = a - e
        h = np.clip((pts - e) @ v / (v @ v), 0.0, 1.0)
        dist = np.linalg.norm(pts - (e + h[:, None] * v), axis=1).min()
        assert dist - CIRCUMRADIUS_MM >= 3.0, (t["id"], dist)
    for i in range(3):
        for k in range(i + 1, 3):
            d = segment_distance_mm(ts[i]["entry_lps_mm"], ts[i]["apex_lps_mm"],
                                    ts[k]["entry_lps_mm"], ts[k]["apex_lps_mm"])
            assert d >= 2 * CIRCUMRADIUS_MM, (ts[i]["id"], ts[k]["id"], d)


def test_implants_placed_as_in_practice(landmarks, targets):
    ts = targets["left"]
    joint = si_joint(1.0)
    for t in ts:
        axis = np.subtract(t["apex_lps_mm"], t["entry_lps_mm"]) / t["length_mm"]
        assert math.degrees(math.acos(-axis @ joint.normal)) < 20.0      # ~perpendicular to the joint
        assert axis[0] < -0.8                                           # near-transverse, medial
    apex = {t["id"]: np.array(t["apex_lps_mm"]) for t in ts}
    s1f = np.array(by_kind(landmarks, "s1_foramen", "left")[0]["position_lps_mm"])
    s2f = np.array(by_kind(landmarks, "s2_foramen", "left")[0]["position_lps_mm"])
    alar = np.array([lm["position_lps_mm"] for lm in by_kind(landmarks, "alar_line", "left")])
    assert apex["L1"][2] > s1f[2] + 8.0                 # first implant above the S1 foramen
    assert apex["L1"][1] > alar[:, 1].max() + 5.0       # and behind the alar line
    assert apex["L2"][2] < apex["L1"][2] and apex["L2"][1] > apex["L1"][1]   # caudal, posterior
    assert apex["L3"][2] < apex["L2"][2] and abs(apex["L3"][2] - s2f[2]) < 20.0
    for t in ts:                                        # apexes lateral to the foramina
        assert abs(t["apex_lps_mm"][0]) > abs(s1f[0]) + 5.0


def test_implant_targets_reject_bad_side():
    with pytest.raises(InputError, match="side"):
        phantom_implant_targets("middle")


def test_returned_records_are_copies(targets):
    t = phantom_implant_targets("left")
    t[0]["apex_lps_mm"][0] = 999.0
    lms = phantom_landmarks()
    lms[0]["position_lps_mm"][0] = 999.0
    assert phantom_implant_targets("left")[0]["apex_lps_mm"][0] != 999.0
    assert phantom_landmarks()[0]["position_lps_mm"][0] != 999.0


# --------------------------------------------------------------------------- cache


@pytest.fixture
def counted_phantom(vol, monkeypatch):
    """make_phantom replaced by the session phantom, counting the calls."""
    calls = []

    def fake(spacing_mm=PHANTOM_SPACING_MM, seed=0):
        calls.append((spacing_mm, seed))
        return vol

    monkeypatch.setattr(phantom, "make_phantom", fake)
    return calls


def test_sample_ct_path_caches_and_round_trips(tmp_path, vol, counted_phantom):
    path = sample_ct_path(tmp_path)
    assert path == tmp_path / "phantom_pelvis_ct.nii.gz" and path.is_file()
    mtime = path.stat().st_mtime_ns
    assert sample_ct_path(tmp_path) == path
    assert path.stat().st_mtime_ns == mtime and len(counted_phantom) == 1
    img = sitk.ReadImage(str(path))
    assert img.GetPixelID() == sitk.sitkInt16
    np.testing.assert_allclose(img.GetOrigin(), vol.origin_mm, atol=1e-4)
    np.testing.assert_allclose(img.GetSpacing(), vol.spacing_mm, atol=1e-6)
    np.testing.assert_allclose(np.reshape(img.GetDirection(), (3, 3)), np.eye(3), atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), np.rint(vol.hu).astype(np.int16))
    meta = json.loads((tmp_path / "phantom_pelvis_ct.json").read_text())
    assert meta["generator_version"] == phantom.generator_version()
    assert meta["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("spoil", ["version", "corrupt_file", "missing_sidecar", "bad_json", "force"])
def test_sample_ct_path_regenerates_when_stale(tmp_path, counted_phantom, spoil):
    path = sample_ct_path(tmp_path)
    meta = tmp_path / "phantom_pelvis_ct.json"
    kwargs = {}
    if spoil == "version":
        doc = json.loads(meta.read_text())
        doc["generator_version"] = "older"
        meta.write_text(json.dumps(doc))
    elif spoil == "corrupt_file":
        with open(path, "r+b") as fh:
            fh.seek(100)
            fh.write(b"\x00\x01\x02")
    elif spoil == "missing_sidecar":
        meta.unlink()
    elif spoil == "bad_json":
        meta.write_text("{not json")
    else:
        kwargs["force"] = True
    assert sample_ct_path(tmp_path, **kwargs) == path
    assert len(counted_phantom) == 2
    assert json.loads(meta.read_text())["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_sample_ct_path_rejects_unusable_folder(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="cache_dir"):
        sample_ct_path(blocker / "sub")


def test_sample_ct_path_default_folder(monkeypatch, tmp_path):
    """Outside a source checkout the default is the user cache folder."""
    monkeypatch.setattr(phantom, "__file__", str(tmp_path / "site" / "or_assist" / "phantom.py"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert phantom._default_cache_dir() == tmp_path / "cache" / "or_assist"


def test_render_preview_png(tmp_path):
    import cv2
    out = render_preview_png(tmp_path / "preview.png")
    img = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert img is not None and img.dtype == np.uint8 and img.ndim == 2
    assert img.shape[0] >= 240 and img.shape[1] >= 600
    assert img.min() < 60 and img.max() > 200       # dark bone, bright air

