"""Virtual view library: build, neighbourhoods, nearest views, files, PNGs, plan/geometry checks."""

from __future__ import annotations

import dataclasses
import json
import math

import cv2
import numpy as np
import pytest

from or_assist.core.carm import carm_angles_from_pose, pose_from_carm_angles
from or_assist.core.ct.load import save_ct
from or_assist.core.ct.volume import CTVolume
from or_assist.core.geometry import CArmGeometry, project, save_geometry
from or_assist.core.plan import Implant, Plan, load_plan, save_plan
from or_assist.core.catalogue import load_catalogue
from or_assist.errors import InputError, SchemaError
from or_assist.render.drr import AttenuationVolume, DRRRenderer
from or_assist.render.implants import metal_line_integrals, metal_mu_per_mm
from or_assist.render.views.build import build_view_library
from or_assist.render.views.model import LIBRARY_VIEW_KINDS, nearest_views, neighbourhood_offsets
from or_assist.cli._parser import TextProgress
from or_assist.cli.plan import format_view_files
from or_assist.render.views.io import build_view_files, load_view_library, save_view_library
from or_assist.render.views.png import OTHER_COLOUR_BGR, PLAN_COLOUR_BGR, image_to_png_px, png_scale

OFFSETS_DEG = (-5.0, 0.0, 5.0)
NEIGHBOUR_SIZE_PX = 32


def synthetic_ct() -> CTVolume:
    """A 2.5 mm box pelvis: soft-tissue ellipse, a bone block and two bone spheres.

    Stored RAS-fashion (direction diag(-1, -1, 1)), as many NIfTI CTs are.
    """
    spacing = 2.5
    nx, ny, nz = 80, 64, 48
    direction = np.diag([-1.0, -1.0, 1.0])
    origin = -direction @ (spacing * (np.array([nx, ny, nz]) - 1) / 2)
    k, j, i = np.mgrid[0:nz, 0:ny, 0:nx].astype(np.float64)
    idx = np.stack([i, j, k], axis=-1)
    lps = idx @ (direction * spacing).T + origin
    x, y, z = lps[..., 0], lps[..., 1], lps[..., 2]
    hu = np.full((nz, ny, nx), -1000.0)
    hu[(x / 95) ** 2 + (y / 75) ** 2 < 1] = 30.0
    hu[(np.abs(x) < 30) & (np.abs(y) < 25) & (np.abs(z) < 40)] = 600.0
    for cx in (-55.0, 55.0):
        hu[(x - cx) ** 2 + (y + 10) ** 2 + (z - 20) ** 2 < 15 ** 2] = 900.0
    return CTVolume(hu.astype(np.float32), origin, (spacing,) * 3, direction, source="synthetic")


def synthetic_plan(ct: CTVolume) -> Plan:
    cat = load_catalogue()
    implants = [Implant("L1", "left", cat.item("T7-50"), [70.0, 5.0, 10.0], [20.0, 8.0, 12.0], 0.0, "S1"),
                Implant("L2", "left", cat.item("T7-45"), [68.0, 15.0, -12.0], [25.0, 17.0, -10.0], 15.0, "S2")]
    return Plan(None, ct.voxel_sha256(), implants, catalogue=cat, source="synthetic plan")


def small_geometry() -> CArmGeometry:
    """128 px detector, 0.72 mm per pixel at the isocentre (92 mm field)."""
    return CArmGeometry((128, 128), 1000.0, (1.2, 1.2), (63.5, 62.0), 600.0)


@pytest.fixture(scope="module")
def case():
    ct = synthetic_ct()
    return ct, synthetic_plan(ct), small_geometry()


@pytest.fixture(scope="module")
def built(case):
    ct, plan, geom = case
    calls = []
    lib = build_view_library(plan, geom, ct=ct, neighbourhood_deg=OFFSETS_DEG,
                             neighbourhood_size_px=NEIGHBOUR_SIZE_PX,
                             progress=lambda done, total, name: calls.append((done, total, name)))
    return lib, calls


@pytest.fixture(scope="module")
def saved(built, tmp_path_factory):
    lib, _ = built
    out = tmp_path_factory.mktemp("views")
    return out, save_view_library(lib, out)


# --------------------------------------------------------------------------- content


def test_every_implant_has_each_named_view_and_its_neighbourhood(built, case):
    lib, calls = built
    _, plan, geom = case
    named = lib.named_entries()
    assert [e.name for e in named] == [f"{i.id} {k}" for i in plan.implants for k in LIBRARY_VIEW_KINDS]
    grid = neighbourhood_offsets(OFFSETS_DEG)
    assert len(grid) == 8 and (0.0, 0.0) not in grid
    assert len(lib) == len(named) * (1 + len(grid))
    for e, li, disp in zip(lib.entries, lib.line_integrals, lib.display):
        g = lib.geometry_of(e)
        assert li.dtype == np.float16 and disp.dtype == np.uint8
        assert li.shape == disp.shape == (g.height, g.width)
        assert max(li.shape) == (128 if e.is_named else NEIGHBOUR_SIZE_PX)
    # progress: every view announced in order, then the end
    assert [c[0] for c in calls] == list(range(len(lib) + 1))
    assert calls[-1] == (len(lib), len(lib), "done") and calls[0][2] == "L1 lateral"


def test_named_views_show_the_implant_at_the_image_centre(built, case):
    """Apex inside the image; the implant midpoint at the principal point; the metal
    (exact chord x titanium mu) raises the line integral there over the bare DRR."""
    lib, _ = built
    ct, plan, geom = case
    renderer = DRRRenderer(AttenuationVolume.from_ct(ct, 60.0))
    mu = metal_mu_per_mm("titanium", 60.0)
    for e, li in zip(lib.entries, lib.line_integrals):
        if not e.is_named:
            continue
        g = lib.geometry_of(e)
        imp = plan.implant(e.implant_id)
        apex = project(imp.apex_lps_mm, e.pose, g)
        assert 0 <= apex[0] <= g.width - 1 and 0 <= apex[1] <= g.height - 1, e.name
        mid = project((imp.entry_lps_mm + imp.apex_lps_mm) / 2, e.pose, g)
        np.testing.assert_allclose(mid, g.principal_point_px, atol=1e-6)
        bare = renderer.render(e.pose, geom, downsample=e.downsample)
        metal = metal_line_integrals(e.pose, geom, plan.implants, mu, downsample=e.downsample)
        np.testing.assert_allclose(li.astype(np.float32), bare + metal, rtol=2e-3, atol=1e-3)
        u, v = (int(round(c)) for c in mid)
        excess = float(li[v, u]) - float(bare[v, u])
        assert excess > 0.4 * mu * imp.item.inscribed_diameter_mm, (e.name, excess)
        assert abs(float(li[0, 0]) - float(bare[0, 0])) < 1e-2  # no metal in the corner
        # the display shows the metal dark against the tissue at the corner
        assert lib.display[lib.index(e.name)][v, u] < lib.display[lib.index(e.name)][0, 0]


def test_neighbourhood_poses_differ_by_the_stated_angles(built, case):
    lib, _ = built
    _, _, geom = case
    axes = tuple(lib.patient_axes)
    parents = {e.name: e for e in lib.named_entries()}
    for e in lib.entries:
        parent = parents[e.parent]
        a = carm_angles_from_pose(e.pose, lib.patient_position, axes)
        p = carm_angles_from_pose(parent.pose, lib.patient_position, axes)
        d_orbital = (a.orbital_deg - p.orbital_deg + 180.0) % 360.0 - 180.0
        assert d_orbital == pytest.approx(e.offset_deg[0], abs=1e-6), e.name
        assert a.tilt_deg - p.tilt_deg == pytest.approx(e.offset_deg[1], abs=1e-6), e.name
        assert e.angles.orbital_deg == pytest.approx(a.orbital_deg, abs=1e-9)
        # same isocentre, on the central ray at the source-isocentre distance
        np.testing.assert_allclose(e.isocenter_lps_mm, parent.isocenter_lps_mm, atol=1e-9)
        src = e.pose.source_position_lps_mm
        np.testing.assert_allclose(src + geom.source_to_isocenter_mm * e.pose.beam_direction_lps,
                                   e.isocenter_lps_mm, atol=1e-6)
    for parent in parents.values():
        offsets = sorted(e.offset_deg for e in lib.entries if e.parent == parent.name and not e.is_named)
        assert offsets == sorted(neighbourhood_offsets(OFFSETS_DEG))


def test_nearest_views_finds_the_closest_beam_of_the_right_implant(built, case):
    lib, _ = built
    _, _, geom = case
    parent = lib.entries[lib.index("L2 inlet")]
    a = parent.angles
    query = pose_from_carm_angles(a.orbital_deg + 4.0, a.tilt_deg - 4.0, parent.isocenter_lps_mm,
                                  geom.source_to_isocenter_mm, lib.patient_position, tuple(lib.patient_axes))
    best = nearest_views(lib, query, k=3)
    assert best[0].name == "L2 inlet [orbital +5, tilt -5]"
    assert best[0].isocenter_distance_mm == pytest.approx(0.0, abs=1e-6)
    assert best[0].beam_angle_deg < best[1].beam_angle_deg + 1e-9 <= best[2].beam_angle_deg + 1e-9
    assert best[0].beam_angle_deg == pytest.approx(math.hypot(1.0, 1.0), abs=0.2)
    assert nearest_views(lib, query, named_only=True)[0].name == "L2 inlet"
    assert nearest_views(lib, query, implant_id="L1")[0].name == "L1 inlet [orbital +5, tilt -5]"
    with pytest.raises(InputError, match="k"):
        nearest_views(lib, query, k=0)
    with pytest.raises(InputError, match="implant_id"):
        nearest_views(lib, query, implant_id="R9")


def test_sample_phantom_plan_views_show_each_implant(tmp_path):
    """The sample plan (3 implants on the phantom pelvis, 3 mm): every implant has its four
    named views, each with its implant at the centre, the apex in the image and metal
    raising the line integral there; the axis view looks down the implant."""
    phantom = pytest.importorskip("or_assist.sim.phantom.make")
    from or_assist.sim.sample import sample_plan

    ct_path = save_ct(phantom.make_phantom(3.0).to_ct(), tmp_path / "phantom.nii.gz")
    plan = sample_plan(ct_path)
    geom = CArmGeometry((96, 96), 1020.0, (3.1, 3.1), (47.5, 47.5), 530.0)
    lib = build_view_library(plan, geom, neighbourhood_deg=None)
    assert len(plan.implants) == 3 and len(lib) == 12
    mu = metal_mu_per_mm("titanium", 60.0)
    for e, li in zip(lib.entries, lib.line_integrals):
        imp = plan.implant(e.implant_id)
        uv = project(np.stack([imp.entry_lps_mm, imp.apex_lps_mm]), e.pose, geom)
        assert np.all((uv >= 0) & (uv <= 95)), e.name
        if e.kind == "axis":
            assert np.linalg.norm(uv[1] - uv[0]) < 1e-6
        metal = metal_line_integrals(e.pose, geom, plan.implants, mu)
        u, v = (int(round(c)) for c in geom.principal_point_px)
        assert metal[v, u] > 0.4 * mu * imp.item.inscribed_diameter_mm, e.name
        assert float(li[v, u]) > float(li[2, 2]) and lib.display[lib.index(e.name)][v, u] < 30, e.name


# --------------------------------------------------------------------------- files


def test_round_trip_keeps_poses_images_and_metadata(built, saved, case):
    lib, _ = built
    out, paths = saved
    _, plan, geom = case
    assert paths["library"] == out / "views.npz"
    back = load_view_library(out, plan=plan, geometry=geom)
    assert back.geometry == lib.geometry and back.plan_sha256 == plan.sha256() == lib.plan_sha256
    assert back.renderer == lib.renderer and back.display_settings == lib.display_settings
    assert back.neighbourhood_deg == OFFSETS_DEG and back.patient_position == "prone"
    np.testing.assert_array_equal(back.patient_axes, lib.patient_axes)
    assert back.or_assist_version == lib.or_assist_version and back.plan_implants == lib.plan_implants
    assert len(back) == len(lib)
    for a, b, la, lb, da, db in zip(lib.entries, back.entries, lib.line_integrals, back.line_integrals,
                                    lib.display, back.display):
        assert (a.name, a.implant_id, a.kind, a.parent, a.offset_deg, a.angles, a.downsample) == \
            (b.name, b.implant_id, b.kind, b.parent, b.offset_deg, b.angles, b.downsample)
        assert a.pose.allclose(b.pose, atol_mm=1e-9, atol_rot=1e-12)
        np.testing.assert_array_equal(a.isocenter_lps_mm, b.isocenter_lps_mm)
        np.testing.assert_array_equal(la, lb)
        np.testing.assert_array_equal(da, db)
        assert [o.id for o in a.outlines] == [o.id for o in b.outlines]
        for oa, ob in zip(a.outlines, b.outlines):
            np.testing.assert_array_equal(oa.silhouette_px, ob.silhouette_px)
            np.testing.assert_array_equal(oa.apex_px, ob.apex_px)
    # the file path itself loads too, and the metadata is readable JSON with the schema
    with np.load(paths["library"]) as data:
        meta = json.loads(str(data["metadata"]))
    assert meta["schema"] == "or_assist.view_library/1" and meta["plan"]["sha256"] == plan.sha256()
    assert load_view_library(paths["library"]).plan_sha256 == plan.sha256()


def test_pngs_show_the_planned_outlines_in_their_colours(built, saved):
    lib, _ = built
    out, paths = saved
    named = lib.named_entries()
    assert len(paths["png"]) == len(named)
    for e, path in zip(named, paths["png"]):
        assert path.exists() and path.parent == out / "png"
        img = cv2.imread(str(path))
        s = png_scale(lib.display[lib.index(e.name)].shape)
        assert s == 8 and img.shape[1] == 128 * s and img.shape[0] > 128 * s  # caption band below

        def colour_near(uv_png, colour, reach=1):
            x, y = (int(round(c)) for c in uv_png)
            win = img[y - reach:y + reach + 1, x - reach:x + reach + 1].reshape(-1, 3).astype(int)
            return int(np.abs(win - np.array(colour)).sum(axis=1).min())

        def png_px(uv):  # pixel centres kept: image pixel (0, 0) covers PNG pixels 0..s-1
            return (np.asarray(uv) + 0.5) * s - 0.5

        own = next(o for o in e.outlines if o.id == e.implant_id)
        assert colour_near(png_px(own.apex_px), PLAN_COLOUR_BGR, 0) < 40, e.name
        edges = np.roll(own.silhouette_px, -1, axis=0) - own.silhouette_px
        k = int(np.argmax(np.linalg.norm(edges, axis=1)))
        mid = own.silhouette_px[k] + edges[k] / 2
        assert colour_near(png_px(mid), PLAN_COLOUR_BGR) < 60, e.name
        np.testing.assert_allclose(image_to_png_px(mid, s), png_px(mid))
        # the other implant's outline in the other colour, somewhere along its longest edge
        other = next(o for o in e.outlines if o.id != e.implant_id)
        edges = np.roll(other.silhouette_px, -1, axis=0) - other.silhouette_px
        k = int(np.argmax(np.linalg.norm(edges, axis=1)))
        along = [png_px(other.silhouette_px[k] + t * edges[k]) for t in (0.3, 0.4, 0.5, 0.6, 0.7)]
        assert min(colour_near(p, OTHER_COLOUR_BGR) for p in along) < 60, e.name
        corner = img[4, 4].astype(int)
        assert corner[0] == corner[1] == corner[2]  # anatomy stays gray


# --------------------------------------------------------------------------- mismatches


def test_library_of_another_plan_is_refused(saved, case):
    out, _ = saved
    _, plan, geom = case
    moved = dataclasses.replace(plan.implants[1], apex_lps_mm=plan.implants[1].apex_lps_mm + [0.0, 1.0, 0.0])
    changed = dataclasses.replace(plan, implants=[plan.implants[0], moved])
    with pytest.raises(InputError, match=r"does not match the plan.*implant 'L2' changed \(apex_lps_mm\)"):
        load_view_library(out, plan=changed, geometry=geom)
    fewer = dataclasses.replace(plan, implants=[plan.implants[0]])
    with pytest.raises(InputError, match=r"implant 'L2' removed"):
        load_view_library(out, plan=fewer)
    other_ct = dataclasses.replace(plan, ct_sha256="0" * 64)
    with pytest.raises(InputError, match=r"does not match the plan.*CT, landmarks, views or catalogue"):
        load_view_library(out, plan=other_ct)


def test_library_of_another_geometry_is_refused(saved, case):
    out, _ = saved
    _, plan, geom = case
    with pytest.raises(InputError, match=r"does not match the C-arm geometry: sid_mm 1000.0 in the library, "
                                         r"1010.0 given"):
        load_view_library(out, plan=plan, geometry=geom.with_changes(sid_mm=1010.0))
    with pytest.raises(InputError, match=r"geometry: image_size"):
        load_view_library(out, geometry=geom.downsampled(2))


# --------------------------------------------------------------------------- bad input


def test_missing_library_file(tmp_path):
    with pytest.raises(InputError, match="view library not found"):
        load_view_library(tmp_path / "nothing")


def test_file_that_is_not_an_npz(tmp_path):
    bad = tmp_path / "views.npz"
    bad.write_text("not a zip")
    with pytest.raises(InputError, match="cannot read as a view library"):
        load_view_library(tmp_path)


def test_npz_without_metadata(tmp_path):
    np.savez(tmp_path / "views.npz", poses=np.zeros((1, 4, 4)))
    with pytest.raises(SchemaError, match="no 'metadata' array"):
        load_view_library(tmp_path / "views.npz")


def test_npz_with_unknown_schema(tmp_path):
    np.savez(tmp_path / "views.npz", metadata=np.array(json.dumps({"schema": "or_assist.view_library/9"})))
    with pytest.raises(SchemaError, match="unknown schema 'or_assist.view_library/9'"):
        load_view_library(tmp_path)


def test_npz_with_truncated_images(saved, tmp_path):
    out, paths = saved
    with np.load(paths["library"]) as data:
        arrays = {k: data[k] for k in data.files}
    key = next(k for k in arrays if k.startswith("line_integrals_"))
    arrays[key] = arrays[key][:1]
    np.savez(tmp_path / "views.npz", **arrays)
    with pytest.raises(SchemaError, match="points at no stored image"):
        load_view_library(tmp_path)


def test_plan_without_implants(case):
    ct, plan, geom = case
    with pytest.raises(InputError, match="has no implants"):
        build_view_library(dataclasses.replace(plan, implants=[]), geom, ct=ct)


def test_ct_that_is_not_the_plans(case):
    ct, plan, geom = case
    other = CTVolume(ct.hu + 1.0, ct.origin_mm, ct.spacing_mm, ct.direction)
    with pytest.raises(InputError, match=r"^ct: is not the plan's CT"):
        build_view_library(plan, geom, ct=other)


@pytest.mark.parametrize("offsets, message", [((0.0, 60.0), "within"), ((5.0, 5.0), "distinct"),
                                              ("5", "list of angle offsets")])
def test_bad_neighbourhood(case, offsets, message):
    ct, plan, geom = case
    with pytest.raises(InputError, match=f"neighbourhood_deg: .*{message}"):
        build_view_library(plan, geom, ct=ct, neighbourhood_deg=offsets)


def test_bad_size(case):
    ct, plan, geom = case
    with pytest.raises(InputError, match="size_px: must be an integer >= 16"):
        build_view_library(plan, geom, ct=ct, size_px=8)


def test_save_something_else(tmp_path):
    with pytest.raises(InputError, match="expected a ViewLibrary"):
        save_view_library({"entries": []}, tmp_path)


# --------------------------------------------------------------------------- command


def test_build_view_files_builds_checks_and_reports_progress(case, tmp_path, capsys):
    ct, plan, geom = case
    ct_path = save_ct(ct, tmp_path / "ct.nii.gz")
    on_disk = dataclasses.replace(plan, ct_path=ct_path.resolve())
    save_plan(on_disk, tmp_path / "plan.json")
    save_geometry(geom, tmp_path / "g.json")
    result = build_view_files(tmp_path / "plan.json", tmp_path / "g.json", tmp_path / "out",
                              neighbourhood_deg=None, progress=TextProgress())
    err = capsys.readouterr().err
    assert "views [" in err and f"{result.views}/{result.views} done" in err
    assert result.views == result.named_views == 8 and len(result.png) == 8
    assert result.library.stat().st_size / 1e6 == pytest.approx(result.size_mb)
    assert "8 views" in format_view_files(result)
    loaded_plan = load_plan(tmp_path / "plan.json")
    lib = load_view_library(tmp_path / "out", plan=loaded_plan, geometry=geom)
    assert lib.neighbourhood_deg == () and lib.plan_source == str(tmp_path / "plan.json")
    # the plan file changes afterwards: its library no longer matches
    doc = json.loads((tmp_path / "plan.json").read_text())
    doc["implants"][0]["entry_lps_mm"][2] += 2.0
    (tmp_path / "plan.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match=r"plan.json: .*implant 'L1' changed \(entry_lps_mm\)"):
        load_view_library(tmp_path / "out", plan=load_plan(tmp_path / "plan.json"))
