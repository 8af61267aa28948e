"""Implants and pins in virtual images: metal attenuation, burn-in, exact line integrals, outlines.

The accuracy test of the issue: a 7 mm triangular implant burned into a water box and
rendered with the real DRR renderer agrees with its projected outline (centroid on the
projected axis, principal axis along it, footprint inside the silhouette) and with the
exact line integrals, within 0.5 px.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from or_assist.core.carm import pose_from_beam
from or_assist.core.ct.attenuation import _TABLE_KEV, mu_cortical_bone_per_mm, mu_water_per_mm
from or_assist.core.geometry import CArmGeometry, project, project_with_depth
from or_assist.core.pose import Pose, rotation_about_axis
from or_assist.core.instruments import GuidePin, guide_pin_mesh
from or_assist.core.plan import Implant, implant_mesh, implant_vertex_directions
from or_assist.core.catalogue import load_catalogue
from or_assist.core.polygon import convex_hull_2d, polygon_area, polygon_centroid, polygon_contains
from or_assist.errors import InputError
from or_assist.render.drr import AttenuationVolume, DRRRenderer
from or_assist.render.implants import (
    METALS,
    burn_implants,
    convex_halfspaces,
    default_mu_per_mm,
    metal_line_integrals,
    metal_mu_per_mm,
)
from or_assist.render.outline import ImplantOutline, implant_outline, object_mesh, silhouette_px

ITEM = load_catalogue().item("T7-45")
AXIS = np.array([-1.0, 0.25, 0.15]) / np.linalg.norm([-1.0, 0.25, 0.15])
ENTRY = np.array([22.0, 3.0, -4.0])
IMPLANT = Implant("L1", "left", ITEM, ENTRY, ENTRY + 45.0 * AXIS, roll_deg=20.0)
MID = 0.5 * (IMPLANT.entry_lps_mm + IMPLANT.apex_lps_mm)
MU_WATER = mu_water_per_mm(60.0)
MU_TI = metal_mu_per_mm("titanium")
# 256 px detector, 1 mm pixels: 0.6 mm per pixel at the isocentre; off-centre principal point
GEOM = CArmGeometry((256, 256), 1000.0, (1.0, 1.0), (131.3, 124.6), 600.0)
DISTORTED = GEOM.with_changes(distortion=[4.0, 0.0, 0.002, -0.001, 0.0])  # up to ~9 px
BEAMS = {
    "lateral": AXIS + np.array([0.0, 0.25, 0.2]),     # about 20 deg off the implant axis
    "oblique": AXIS + np.array([0.0, 1.0, 0.3]),
    "perpendicular": np.array([0.25, 1.0, 0.0]),
}


def view(name: str) -> Pose:
    return pose_from_beam(BEAMS[name], MID + np.array([20.0, 10.0, 15.0]), 600.0)


def water_box(spacing_mm: float = 1.0, extent_mm=(70.0, 50.0, 50.0)) -> AttenuationVolume:
    """Uniform water, box centre at LPS 0, flipped direction (like the real CT)."""
    direction = np.diag([-1.0, -1.0, 1.0])
    n = np.round(np.asarray(extent_mm) / spacing_mm).astype(int)
    spacing = np.full(3, spacing_mm)
    origin = -direction @ (spacing * (n - 1) / 2)
    return AttenuationVolume(np.full(n[::-1], MU_WATER, np.float32), origin, spacing, direction)


@pytest.fixture(scope="module")
def scene():
    """Water box, the same with the implant burned in, and a renderer of each."""
    vol = water_box()
    burned = burn_implants(vol, [IMPLANT], MU_TI)
    return vol, burned, DRRRenderer(vol), DRRRenderer(burned)


def metal_contribution(scene, pose, geometry=GEOM) -> np.ndarray:
    _, _, r0, r1 = scene
    return r1.render(pose, geometry) - r0.render(pose, geometry)


def pixel_grid(geometry):
    vv, uu = np.mgrid[0:geometry.height, 0:geometry.width]
    return uu, vv, np.column_stack([uu.ravel(), vv.ravel()]).astype(float)


def weighted_centroid(image, uu, vv) -> np.ndarray:
    w = np.clip(image, 0, None).astype(np.float64)
    return np.array([(w * uu).sum(), (w * vv).sum()]) / w.sum()


# ----------------------------------------------------------------------------- materials


def test_metal_attenuation_from_nist_tables():
    assert len(METALS["titanium"][0]) == len(METALS["steel"][0]) == len(_TABLE_KEV)
    assert metal_mu_per_mm("titanium", 60.0) == pytest.approx(0.7661 * 4.51 / 10)
    assert metal_mu_per_mm("steel", 100.0) == pytest.approx(0.3717 * 8.0 / 10)
    # log-log interpolation between 60 and 80 keV
    expected = math.exp(0.5 * (math.log(0.7661) + math.log(0.4052))) * 0.451
    assert metal_mu_per_mm("titanium", math.sqrt(60.0 * 80.0)) == pytest.approx(expected, rel=1e-9)
    for e in (40.0, 60.0, 80.0, 120.0):
        assert metal_mu_per_mm("steel", e) > metal_mu_per_mm("titanium", e) > mu_cortical_bone_per_mm(e) \
            > mu_water_per_mm(e)
    assert default_mu_per_mm(IMPLANT) == MU_TI
    assert default_mu_per_mm(GuidePin([0, 0, 0], [0, 0, 50])) == metal_mu_per_mm("steel")


def test_metal_attenuation_bad_input():
    with pytest.raises(InputError, match="material"):
        metal_mu_per_mm("gold")
    with pytest.raises(InputError, match="energy_kev"):
        metal_mu_per_mm("titanium", 500.0)
    with pytest.raises(InputError, match="obj"):
        default_mu_per_mm("pin")


# ----------------------------------------------------------------------------- meshes


def test_convex_halfspaces_of_implant():
    v, f = implant_mesh(IMPLANT)
    n, d = convex_halfspaces(v, f)
    assert len(n) == 7                                   # entry cap, 3 sides, 3 tip facets
    assert np.allclose(np.linalg.norm(n, axis=1), 1.0)
    assert np.all(v @ n.T - d <= 1e-9)
    assert np.all(MID @ n.T - d < -1.0)                  # the axis mid-point is well inside


def test_convex_halfspaces_rejects_bad_meshes():
    v, f = implant_mesh(IMPLANT)
    with pytest.raises(InputError, match="closed"):
        convex_halfspaces(v, f[1:], "open")
    with pytest.raises(InputError, match="convex"):
        convex_halfspaces(v, f[:, ::-1], "inside-out")
    dented = v.copy()
    dented[6] = MID                                      # apex pushed back inside: not convex
    with pytest.raises(InputError, match="dented: is not a convex"):
        convex_halfspaces(dented, f, "dented")
    with pytest.raises(InputError, match="objects"):
        object_mesh("implant", "objects")
    with pytest.raises(InputError, match="faces"):
        object_mesh((v, f.astype(float)))


# ----------------------------------------------------------------------------- burn-in


def test_burn_fills_the_implant_volume(scene):
    vol, burned, _, _ = scene
    assert vol.mu_per_mm.max() == np.float32(MU_WATER)           # input untouched
    assert np.array_equal(burned.affine, vol.affine)
    metal = (burned.mu_per_mm - vol.mu_per_mm).sum() / (MU_TI - MU_WATER)
    r = ITEM.circumradius_mm
    area = 3 * math.sqrt(3) / 4 * r * r
    exact = area * (IMPLANT.length_mm - ITEM.tip_taper_mm) + area * ITEM.tip_taper_mm / 3
    assert metal == pytest.approx(exact, rel=2e-3)
    i, j, k = np.round(vol.lps_to_index(MID)).astype(int)
    assert burned.mu_per_mm[k, j, i] == pytest.approx(MU_TI)
    assert burned.mu_per_mm[0, 0, 0] == np.float32(MU_WATER)


def test_burn_matches_brute_force_supersampling():
    """Only straddling voxels are supersampled; the result equals sampling every voxel."""
    rot = rotation_about_axis([1.0, 2.0, 3.0], 0.5) @ np.diag([1.0, -1.0, -1.0])
    spacing = np.array([0.8, 1.1, 1.3])
    vol = AttenuationVolume(np.full((14, 16, 20), 0.02, np.float32), [3.0, -2.0, 1.0], spacing, rot)
    centre = vol.affine @ np.array([9.5, 7.5, 6.5, 1.0])
    u = np.array([-1.0, 0.3, 0.5]) / np.linalg.norm([-1.0, 0.3, 0.5])
    pin = GuidePin.from_tip_direction(centre[:3] + 4.0 * u, u, 10.0, tip_cone_mm=2.0)
    burned = burn_implants(vol, pin, 0.9, supersample=3)
    n, d = convex_halfspaces(*guide_pin_mesh(pin))
    off = (np.arange(3) + 0.5) / 3 - 0.5
    sub = np.stack(np.meshgrid(off, off, off, indexing="ij"), -1).reshape(-1, 3)
    k, j, i = np.mgrid[0:14, 0:16, 0:20]
    idx = np.stack([i, j, k], -1).reshape(-1, 1, 3) + sub[None]
    lps = idx @ (rot * spacing).T + vol.origin_mm
    frac = np.all(lps @ n.T <= d, axis=-1).mean(axis=1).reshape(14, 16, 20)
    assert 0 < frac.sum() and np.count_nonzero((frac > 0) & (frac < 1)) > 50
    assert np.allclose(burned.mu_per_mm, 0.02 + frac * (0.9 - 0.02), atol=1e-6)


@pytest.mark.parametrize("name", sorted(BEAMS))
def test_burned_implant_agrees_with_outline(scene, name):
    pose = view(name)
    diff = metal_contribution(scene, pose)
    exact = metal_line_integrals(pose, GEOM, IMPLANT, MU_TI - MU_WATER)
    outline = implant_outline(IMPLANT, pose, GEOM)
    uu, vv, pts = pixel_grid(GEOM)

    # the weighted centroid of the burned-in metal lies on the projected axis ...
    c_burned = weighted_centroid(diff, uu, vv)
    axis_dir = (outline.apex_px - outline.entry_px) / np.linalg.norm(outline.apex_px - outline.entry_px)
    normal = np.array([-axis_dir[1], axis_dir[0]])
    assert abs((c_burned - outline.entry_px) @ normal) < 0.5
    # ... and where the exact line integrals put it
    assert np.linalg.norm(c_burned - weighted_centroid(exact, uu, vv)) < 0.5
    # its principal axis runs along the projected axis
    w = np.clip(diff, 0, None)
    du, dv = uu - c_burned[0], vv - c_burned[1]
    cov = np.array([[(w * du * du).sum(), (w * du * dv).sum()], [(w * du * dv).sum(), (w * dv * dv).sum()]])
    principal = np.linalg.eigh(cov)[1][:, 1]
    assert math.degrees(math.acos(min(1.0, abs(principal @ axis_dir)))) < 0.5
    # the burned-in footprint lies inside the silhouette dilated by 1 px
    footprint = diff.ravel() > 0.1 * diff.max()
    assert footprint.sum() > 300
    assert not np.any(footprint & ~outline.contains(pts, 1.0))
    # the pixels the exact metal covers are those inside the silhouette (pixel centres)
    covered = exact.ravel() > 0
    assert not np.any(covered & ~outline.contains(pts, 1e-3))
    assert not np.any(~covered & inside_by(pts, outline.silhouette_px, 1e-3))
    assert np.linalg.norm(pts[covered].mean(axis=0) - outline.centroid_px) < 0.5


@pytest.mark.parametrize("name", ["oblique", "perpendicular"])
def test_exact_line_integrals_match_burned(scene, name):
    pose = view(name)
    diff = metal_contribution(scene, pose)
    exact = metal_line_integrals(pose, GEOM, IMPLANT, MU_TI - MU_WATER)
    assert diff.sum() == pytest.approx(exact.sum(), rel=5e-3)
    interior = ndimage.binary_erosion(exact > 0, iterations=2)   # 1.2 mm in from the outline
    rel = (diff[interior] - exact[interior]) / exact[interior]
    assert interior.sum() > 300
    assert np.median(np.abs(rel)) < 0.02
    assert abs(np.median(rel)) < 0.01


# ----------------------------------------------------------------------------- exact integrals


def central_ray_pose(beam, through_lps):
    """A pose whose central ray (pixel (128, 120) of CENTRED) runs along beam through a point."""
    return pose_from_beam(beam, through_lps, 600.0)


CENTRED = CArmGeometry((256, 240), 1000.0, (1.0, 1.0), (128.0, 120.0), 600.0)


def test_chord_through_prism_perpendicular_to_axis():
    dirs = implant_vertex_directions(IMPLANT)
    r = ITEM.circumradius_mm
    mid_prism = IMPLANT.entry_lps_mm + 20.0 * IMPLANT.axis_unit
    towards_vertex = metal_line_integrals(central_ray_pose(dirs[0], mid_prism), CENTRED, IMPLANT, 1.0)
    assert towards_vertex[120, 128] == pytest.approx(1.5 * r, rel=1e-5)   # opposite face to vertex
    along_side = metal_line_integrals(central_ray_pose(np.cross(IMPLANT.axis_unit, dirs[0]), mid_prism),
                                      CENTRED, IMPLANT, 2.0)
    assert along_side[120, 128] == pytest.approx(2.0 * 2 * r / math.sqrt(3), rel=1e-5)
    # a ray parallel to the axis, 1 mm off it, runs the whole prism plus part of the taper
    down_axis = metal_line_integrals(central_ray_pose(IMPLANT.axis_unit, IMPLANT.entry_lps_mm),
                                     CENTRED, IMPLANT, 1.0)
    assert down_axis[120, 128] == pytest.approx(IMPLANT.length_mm, rel=1e-5)


def test_pin_line_integrals_and_multiple_objects():
    pin = GuidePin.from_tip_direction(MID + [0.0, 0.0, 12.0], AXIS, 100.0)
    pose = central_ray_pose(np.cross(AXIS, [0.0, 0.0, 1.0]), pin.tip_lps_mm - 30.0 * AXIS)
    mu_fe = metal_mu_per_mm("steel")
    one = metal_line_integrals(pose, CENTRED, pin, mu_fe)
    assert one[120, 128] / mu_fe == pytest.approx(3.2, rel=0.02)   # chord through the wire's axis
    both = metal_line_integrals(pose, CENTRED, [IMPLANT, pin], [MU_TI, mu_fe])
    alone = metal_line_integrals(pose, CENTRED, IMPLANT, MU_TI)
    assert np.allclose(both, alone + one, atol=1e-5)
    mesh = guide_pin_mesh(pin)
    assert np.array_equal(metal_line_integrals(pose, CENTRED, [mesh], mu_fe), one)


def test_line_integrals_roi_and_downsample_match_full_image():
    pose = view("oblique")
    full = metal_line_integrals(pose, GEOM, IMPLANT, MU_TI)
    roi = metal_line_integrals(pose, GEOM, IMPLANT, MU_TI, roi=(100, 90, 60, 50))
    assert np.array_equal(roi, full[90:140, 100:160])
    half = metal_line_integrals(pose, GEOM, IMPLANT, MU_TI, downsample=2)
    assert np.array_equal(half, metal_line_integrals(pose, GEOM.downsampled(2), IMPLANT, MU_TI))
    assert half.shape == (128, 128)


def test_pin_in_coarse_ct_is_blurred_but_exact_integrals_are_not():
    """Why metal_line_integrals exists: a 3.2 mm pin voxelised at 3 mm loses its peak."""
    pin = GuidePin.from_tip_direction([-15.0, 0.0, 0.0], [-1.0, 0.1, 0.05], 60.0)
    mu_fe = metal_mu_per_mm("steel")
    pose = central_ray_pose([0.1, 1.0, 0.2], [0.0, 0.0, 0.0])
    exact = metal_line_integrals(pose, CENTRED, pin, mu_fe - MU_WATER)
    peaks = {}
    for spacing in (1.0, 3.0):
        vol = water_box(spacing, (96.0, 48.0, 48.0))
        burned = burn_implants(vol, pin, mu_fe)
        diff = DRRRenderer(burned).render(pose, CENTRED) - DRRRenderer(vol).render(pose, CENTRED)
        assert diff.sum() == pytest.approx(exact.sum(), rel=0.03)   # the metal is all there ...
        peaks[spacing] = diff.max() / exact.max()
    assert peaks[1.0] > 0.9                                          # ... sharp at 1 mm
    assert peaks[3.0] < 0.85                                         # ... smeared at 3 mm


# ----------------------------------------------------------------------------- outlines


def test_outline_axis_depths_and_orientation():
    pose = view("oblique")
    out = implant_outline(IMPLANT, pose, GEOM)
    assert isinstance(out, ImplantOutline) and out.id == "L1"
    uv, depth = project_with_depth(np.stack([IMPLANT.entry_lps_mm, IMPLANT.apex_lps_mm]), pose, GEOM)
    assert np.allclose(out.axis_px, uv) and np.allclose(out.entry_px, uv[0]) and np.allclose(out.apex_px, uv[1])
    assert out.entry_depth_mm == pytest.approx(depth[0]) and out.apex_depth_mm == pytest.approx(depth[1])
    assert polygon_area(out.silhouette_px) > 0
    v, _ = implant_mesh(IMPLANT)
    proj = project(v, pose, GEOM)
    assert np.all(out.contains(proj, 1e-9))                        # every vertex on or inside
    assert all(np.min(np.linalg.norm(proj - p, axis=1)) < 1e-9 for p in out.silhouette_px)
    assert np.array_equal(out.centroid_px, polygon_centroid(out.silhouette_px))


def test_silhouette_of_prism_viewed_down_its_axis_is_the_triangle():
    v, _ = implant_mesh(IMPLANT)
    from_entry = central_ray_pose(IMPLANT.axis_unit, MID)
    sil = implant_outline(IMPLANT, from_entry, CENTRED).silhouette_px
    assert sil.shape == (3, 2)                                     # the near (entry) cap
    assert np.allclose(sil, convex_hull_2d(project(v[:3], from_entry, CENTRED)), atol=1e-9)
    from_apex = central_ray_pose(-IMPLANT.axis_unit, MID)
    sil = implant_outline(IMPLANT, from_apex, CENTRED).silhouette_px
    assert np.allclose(sil, convex_hull_2d(project(v[3:6], from_apex, CENTRED)), atol=1e-9)
    # an equilateral triangle centred on the principal point
    sides = np.linalg.norm(sil - np.roll(sil, 1, axis=0), axis=1)
    assert np.ptp(sides) < 1e-9 and np.allclose(sil.mean(axis=0), [128.0, 120.0])


def test_outline_with_distortion_follows_the_curved_edges():
    pose = view("perpendicular")
    out = implant_outline(IMPLANT, pose, DISTORTED)
    straight = implant_outline(IMPLANT, pose, GEOM)
    assert len(out.silhouette_px) > 50 and len(straight.silhouette_px) <= 7
    ends = np.stack([IMPLANT.entry_lps_mm, IMPLANT.apex_lps_mm])
    assert np.allclose(out.axis_px, project(ends, pose, DISTORTED))
    assert np.abs(out.axis_px - straight.axis_px).max() > 1.0       # the distortion matters here
    _, _, pts = pixel_grid(DISTORTED)
    covered = metal_line_integrals(pose, DISTORTED, IMPLANT, 1.0).ravel() > 0
    assert not np.any(covered & ~out.contains(pts, 0.05))
    assert not np.any(~covered & inside_by(pts, out.silhouette_px, 0.05))


def inside_by(pts, poly, dist_px):
    """Points inside the polygon and more than dist_px from its boundary."""
    out = polygon_contains(pts, poly)
    pts = pts[out]
    a = poly[None]
    ab = np.roll(poly, -1, axis=0)[None] - a
    t = np.clip(((pts[:, None] - a) * ab).sum(-1) / (ab ** 2).sum(-1), 0, 1)
    d = np.linalg.norm(a + t[..., None] * ab - pts[:, None], axis=-1).min(axis=1)
    out[out] = d > dist_px
    return out


def test_pin_outline():
    pin = GuidePin.from_tip_direction(MID, AXIS, 80.0, tip_cone_mm=4.0, id="pin 1")
    pose = view("perpendicular")
    out = implant_outline(pin, pose, GEOM)
    assert out.id == "pin 1"
    assert np.allclose(out.apex_px, project(pin.tip_lps_mm, pose, GEOM))
    assert np.allclose(out.entry_px, project(pin.back_lps_mm, pose, GEOM))
    axis_dir = (out.apex_px - out.entry_px) / np.linalg.norm(out.apex_px - out.entry_px)
    across = (out.silhouette_px - out.entry_px) @ np.array([-axis_dir[1], axis_dir[0]])
    near_depth = min(out.entry_depth_mm, out.apex_depth_mm)          # the widest end
    assert np.ptp(across) * 1.0 * near_depth / 1000.0 == pytest.approx(3.2, rel=0.03)
    assert np.allclose(silhouette_px(guide_pin_mesh(pin)[0], pose, GEOM), out.silhouette_px)


def test_bad_input():
    vol = water_box(2.0, (40.0, 40.0, 40.0))
    pose = view("oblique")
    with pytest.raises(InputError, match="volume"):
        burn_implants(vol.mu_per_mm, IMPLANT, MU_TI)
    with pytest.raises(InputError, match="supersample"):
        burn_implants(vol, IMPLANT, MU_TI, supersample=0)
    with pytest.raises(InputError, match="objects\\[0\\]: lies partly outside"):
        burn_implants(vol, IMPLANT, MU_TI)                         # 45 mm implant, 40 mm box
    with pytest.raises(InputError, match="mu_per_mm"):
        metal_line_integrals(pose, GEOM, [IMPLANT, IMPLANT], [MU_TI])
    with pytest.raises(InputError, match="mu_per_mm"):
        metal_line_integrals(pose, GEOM, IMPLANT, -1.0)
    with pytest.raises(InputError, match="objects"):
        metal_line_integrals(pose, GEOM, [], MU_TI)
    with pytest.raises(InputError, match="objects\\[1\\]"):
        metal_line_integrals(pose, GEOM, [IMPLANT, "pin"], MU_TI)
    beam = BEAMS["oblique"] / np.linalg.norm(BEAMS["oblique"])
    behind = pose_from_beam(beam, MID + 700.0 * beam, 600.0)             # implant behind the source
    with pytest.raises(InputError, match="behind the X-ray source"):
        metal_line_integrals(behind, GEOM, IMPLANT, MU_TI)
    with pytest.raises(InputError, match="L1: lies"):
        implant_outline(IMPLANT, behind, GEOM)
    with pytest.raises(InputError, match="obj"):
        implant_outline(implant_mesh(IMPLANT), pose, GEOM)
    with pytest.raises(InputError, match="geometry"):
        implant_outline(IMPLANT, pose, "C-arm")
    with pytest.raises(InputError, match="roi"):
        metal_line_integrals(pose, GEOM, IMPLANT, MU_TI, roi=(0, 0, 300, 10))
    with pytest.raises(InputError, match="vertices_lps_mm"):
        silhouette_px(np.zeros((2, 3)), pose, GEOM)
    with pytest.raises(InputError, match="edge_step_px"):
        silhouette_px(implant_mesh(IMPLANT)[0], pose, GEOM, edge_step_px=0.0)
