"""DRR renderer: geometry against CONVENTIONS projection, path lengths, kernel vs reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from or_assist.core.carm import pose_from_carm_angles, sijf_view_pose
from or_assist.core.geometry import CArmGeometry, backproject, project
from or_assist.core.pose import rotation_about_axis
from or_assist.errors import InputError
from or_assist.render.drr import AttenuationVolume, DRRRenderer, render_drr, render_reference

# Bead positions (LPS mm) chosen so that no two project closer than 12 px in any test view.
BEADS_LPS_MM = np.array([[-24.5, 16.7, 2.6], [-4.1, 11.1, 23.3], [-20.8, -23.1, -29.5],
                         [22.4, -22.4, 13.2], [13.4, -23.0, -18.3], [23.7, 13.8, -25.7]])
ISOCENTER_MM = (1.5, -2.0, 3.0)
OBLIQUE_FLIP = rotation_about_axis((1.0, 2.0, 3.0), 0.6) @ np.diag([1.0, -1.0, 1.0])  # det -1


def bead_geometry(distortion=None) -> CArmGeometry:
    """160 px detector, about 1 px per mm at the isocentre, off-centre principal point."""
    return CArmGeometry((160, 160), 1000.0, (1000 / 600, 1000 / 600), (82.3, 77.9), 600.0, distortion)


def volume_centred(mu: np.ndarray, spacing, direction) -> AttenuationVolume:
    """A volume whose box centre is at LPS (0, 0, 0)."""
    spacing = np.asarray(spacing, dtype=np.float64)
    n = np.array(mu.shape[::-1], dtype=np.float64)
    origin = -np.asarray(direction) @ (spacing * (n - 1) / 2)
    return AttenuationVolume(mu.astype(np.float32), origin, spacing, direction)


def bead_phantom(spacing, direction, extent_mm=84.0, radius_mm=2.0, mu=0.05):
    """Voxelised spherical beads; returns the volume and each bead's voxel centroid (LPS)."""
    spacing = np.asarray(spacing, dtype=np.float64)
    shape_xyz = np.ceil(extent_mm / spacing).astype(int)
    empty = volume_centred(np.zeros(shape_xyz[::-1], np.float32), spacing, direction)
    mu_vol = np.zeros(shape_xyz[::-1], np.float32)
    m = empty.affine[:3, :3]
    centroids = []
    for bead in BEADS_LPS_MM:
        c = empty.lps_to_index(bead)
        reach = radius_mm / spacing.min() + 1
        ranges = [np.arange(math.floor(c[a] - reach), math.ceil(c[a] + reach) + 1) for a in range(3)]
        ii, jj, kk = np.meshgrid(*ranges, indexing="ij")
        idx = np.stack([ii.ravel(), jj.ravel(), kk.ravel()], axis=1)
        lps = idx @ m.T + empty.origin_mm
        inside = np.linalg.norm(lps - bead, axis=1) <= radius_mm
        sel = idx[inside]
        mu_vol[sel[:, 2], sel[:, 1], sel[:, 0]] = mu
        centroids.append(lps[inside].mean(axis=0))
    return AttenuationVolume(mu_vol, empty.origin_mm, spacing, direction), np.array(centroids)


def image_centroids(img: np.ndarray, uv_expected: np.ndarray, half: int = 5) -> np.ndarray:
    """Intensity-weighted centroid around each expected position, after background removal."""
    out = []
    for u, v in uv_expected:
        uc, vc = int(round(u)), int(round(v))
        win = img[vc - half:vc + half + 1, uc - half:uc + half + 1].astype(np.float64)
        border = np.concatenate([win[0], win[-1], win[:, 0], win[:, -1]])
        w = np.clip(win - np.median(border), 0, None)
        vv, uu = np.mgrid[vc - half:vc + half + 1, uc - half:uc + half + 1]
        out.append([(w * uu).sum() / w.sum(), (w * vv).sum() / w.sum()])
    return np.array(out)


@pytest.fixture(scope="module")
def beads_identity():
    return bead_phantom((1.0, 1.0, 1.0), np.eye(3))


@pytest.fixture(scope="module")
def beads_oblique():
    """Oblique rotation with a flip, anisotropic voxels near 1 mm."""
    return bead_phantom((0.9, 1.0, 1.2), OBLIQUE_FLIP)


VIEWS = [(0, 0), (90, 0), (35, 25), (-60, -30), (-120, 10), (150, -40)]


@pytest.mark.parametrize("phantom", ["beads_identity", "beads_oblique"])
def test_bead_centroids_match_conventions_projection(phantom, request):
    vol, centroids = request.getfixturevalue(phantom)
    renderer = DRRRenderer(vol)
    geom = bead_geometry()
    for orbital, tilt in VIEWS:
        pose = pose_from_carm_angles(orbital, tilt, ISOCENTER_MM, 600.0, "supine")
        img = renderer.render(pose, geom)
        uv = project(centroids, pose, geom)
        err = np.linalg.norm(image_centroids(img, uv) - uv, axis=1)
        assert err.max() < 0.25, f"view {orbital}/{tilt}: bead centroid errors {err.round(3)} px"


def test_bead_centroids_with_distortion(beads_oblique):
    vol, centroids = beads_oblique
    geom = bead_geometry(distortion=[8.0, 0.0, 0.004, -0.003, 0.0])
    pose = pose_from_carm_angles(35, 25, ISOCENTER_MM, 600.0, "supine")
    uv = project(centroids, pose, geom)
    shift = np.linalg.norm(uv - project(centroids, pose, geom, distort=False), axis=1)
    assert shift.max() > 1.0  # the distortion matters at these beads
    img = DRRRenderer(vol).render(pose, geom)
    err = np.linalg.norm(image_centroids(img, uv) - uv, axis=1)
    assert err.max() < 0.25, f"bead centroid errors {err.round(3)} px"


def obb_path_length_mm(source, dirs, centre, axes, half_mm):
    """Analytic chord length of rays through an oriented box, and the entry/exit points."""
    o = (source - centre) @ axes           # (3,) in box axes
    d = dirs @ axes                         # (N, 3)
    with np.errstate(divide="ignore"):
        ta = (-half_mm - o) / d
        tb = (half_mm - o) / d
    t0 = np.minimum(ta, tb).max(axis=1)
    t1 = np.maximum(ta, tb).min(axis=1)
    return np.clip(t1 - t0, 0, None), o + t0[:, None] * d, o + t1[:, None] * d


def test_box_path_length_is_reproduced():
    spacing = np.array([1.0, 1.2, 1.5])
    direction = rotation_about_axis((0.3, -1.0, 0.5), 0.4)
    mu = np.zeros((40, 50, 60), np.float32)
    lo, hi = np.array([10, 8, 6]), np.array([49, 41, 33])  # box voxels (i, j, k), inclusive
    mu[lo[2]:hi[2] + 1, lo[1]:hi[1] + 1, lo[0]:hi[0] + 1] = 0.02
    vol = volume_centred(mu, spacing, direction)
    geom = CArmGeometry((64, 48), 1000.0, (3.0, 3.0), (30.2, 25.7), 600.0)
    pose = pose_from_carm_angles(25, -15, (0, 0, 0), 600.0, "prone")
    img = DRRRenderer(vol).render(pose, geom)
    # the box's faces lie half a voxel beyond its outer voxel centres
    centre = vol.affine[:3, :3] @ ((lo + hi) / 2) + vol.origin_mm
    half = spacing * (hi - lo + 1) / 2
    vv, uu = np.mgrid[0:48, 0:64]
    src, dirs = backproject(np.stack([uu.ravel(), vv.ravel()], 1).astype(float), pose, geom)
    length, p_in, p_out = obb_path_length_mm(src, dirs, centre, direction, half)
    margin = 2 * spacing.max()

    def away_from_edges(p):  # on a face, at least `margin` from the face's edges
        inner = np.abs(p) <= half - margin
        return inner.sum(axis=1) >= 2

    ok = (length > 0) & away_from_edges(p_in) & away_from_edges(p_out)
    assert ok.sum() > 300
    rel = np.abs(img.ravel()[ok] / (0.02 * length[ok]) - 1)
    assert rel.max() < 0.005, f"worst relative path-length error {rel.max():.4f}"


def test_uniform_volume_gives_exact_chord_through_voxel_box():
    spacing = np.array([1.3, 0.8, 1.1])
    vol = volume_centred(np.full((20, 30, 25), 0.01, np.float32), spacing, OBLIQUE_FLIP)
    geom = CArmGeometry((40, 36), 1000.0, (1.5, 1.5), (19.0, 17.5), 700.0)
    pose = pose_from_carm_angles(-40, 20, (0, 0, 0), 700.0, "supine")
    img = DRRRenderer(vol).render(pose, geom, step_mm=2.0)
    vv, uu = np.mgrid[0:36, 0:40]
    src, dirs = backproject(np.stack([uu.ravel(), vv.ravel()], 1).astype(float), pose, geom)
    n = np.array(vol.shape_xyz)
    length, _, _ = obb_path_length_mm(src, dirs, np.zeros(3), OBLIQUE_FLIP, spacing * n / 2)
    assert (length == 0).any() and (length > 0).sum() > 100  # the box edge is in the image
    np.testing.assert_allclose(img.ravel(), 0.01 * length, rtol=1e-4, atol=1e-6)


def smooth_random_volume(shape, seed=0):
    rng = np.random.default_rng(seed)
    v = rng.random(shape)
    for axis in range(3):
        for _ in range(2):
            v = (v + np.roll(v, 1, axis) + np.roll(v, -1, axis)) / 3
    return (0.03 * v * (rng.random(shape) > 0.2)).astype(np.float32)  # smooth, with holes


def test_kernel_matches_reference_on_oblique_volume_with_distortion():
    vol = volume_centred(smooth_random_volume((22, 26, 30)), (1.1, 0.9, 1.4), OBLIQUE_FLIP)
    geom = CArmGeometry((20, 16), 1000.0, (2.0, 2.0), (9.0, 8.5), 600.0, [0.4, -0.1, 0.003, 0.002, 0.0])
    pose = pose_from_carm_angles(70, -20, (2, 3, -1), 600.0, "prone")
    for step in (None, 0.7):
        img = DRRRenderer(vol).render(pose, geom, step_mm=step)
        ref = render_reference(vol, pose, geom, step_mm=step)
        assert img.dtype == np.float32 and img.shape == (16, 20) and img.flags.c_contiguous
        assert (ref > 0).mean() > 0.9
        np.testing.assert_allclose(img, ref, rtol=1e-4)


@pytest.fixture(scope="module")
def real_ct(real_ct_path):
    from or_assist.core.ct.load import load_ct
    return load_ct(real_ct_path)


@pytest.fixture(scope="module")
def real_renderer(real_ct):
    return DRRRenderer(AttenuationVolume.from_ct(real_ct))


def sacrum_lateral_pose():
    """Lateral through the sacrum of the shared CT (supine), Cios-like source distance."""
    return sijf_view_pose("lateral", [75.0, -71.0, 217.0], [0.0, -71.0, 217.0], "left", 530.0,
                          patient_position="supine")


def cios_geometry(size_px: int) -> CArmGeometry:
    return CArmGeometry((size_px, size_px), 1020.0, (298.0 / size_px,) * 2,
                        ((size_px - 1) / 2,) * 2, 530.0)


def test_kernel_matches_reference_on_real_ct(real_ct, real_renderer):
    pose, geom = sacrum_lateral_pose(), cios_geometry(24)
    img = real_renderer.render(pose, geom)
    ref = render_reference(real_renderer.volume, pose, geom)
    assert (ref > 1.0).mean() > 0.8  # most rays cross the body
    np.testing.assert_allclose(img, ref, rtol=1e-4)
    # a bone-only render (mask): the kernel's crop to the mask's extent changes nothing
    bone = real_ct.hu > 200
    masked = DRRRenderer(AttenuationVolume.from_ct(real_ct, mask=bone))
    pose_ap = pose_from_carm_angles(15, -25, [0.0, -71.0, 217.0], 530.0, "supine")
    img_b = masked.render(pose_ap, geom)
    ref_b = render_reference(AttenuationVolume.from_ct(real_ct), pose_ap, geom, mask=bone)
    assert 0 < img_b.max() < 0.5 * real_renderer.render(pose_ap, geom).max()
    np.testing.assert_allclose(img_b, ref_b, rtol=1e-4, atol=1e-6 * ref_b.max())


def test_roi_and_downsample_match_full_render(real_renderer):
    pose, geom = sacrum_lateral_pose(), cios_geometry(96)
    full = real_renderer.render(pose, geom)
    roi = real_renderer.render(pose, geom, roi=(7, 30, 41, 17))
    np.testing.assert_array_equal(roi, full[30:47, 7:48])
    down = real_renderer.render(pose, geom, downsample=3)
    np.testing.assert_array_equal(down, real_renderer.render(pose, geom.downsampled(3)))
    # binning by 3 puts the new pixel centres on old pixel centres 1, 4, 7, ...
    np.testing.assert_allclose(down, full[1::3, 1::3], rtol=1e-5)
    both = real_renderer.render(pose, geom, downsample=2, roi=(3, 4, 10, 8))
    np.testing.assert_array_equal(both, real_renderer.render(pose, geom.downsampled(2))[4:12, 3:13])


def test_ray_mask_casts_only_its_rays(real_renderer):
    pose, geom = sacrum_lateral_pose(), cios_geometry(64)
    full = real_renderer.render(pose, geom, step_mm=2.0)
    hits_full = real_renderer.last_stats.rays_hit
    yy, xx = np.mgrid[:64, :64]
    disc = (xx - 31.5) ** 2 + (yy - 31.5) ** 2 < 28.0 ** 2
    masked = real_renderer.render(pose, geom, step_mm=2.0, ray_mask=disc)
    np.testing.assert_array_equal(masked[disc], full[disc])
    assert np.all(masked[~disc] == 0) and np.all(full[~disc] > 0)
    assert real_renderer.last_stats.rays_hit == disc.sum() < hits_full
    with pytest.raises(InputError, match="ray_mask"):
        real_renderer.render(pose, geom, ray_mask=disc[:, :10])
    with pytest.raises(InputError, match="ray_mask.*boolean"):
        real_renderer.render(pose, geom, ray_mask=disc.astype(np.uint8))
    with pytest.raises(InputError, match="ray_mask.*no pixel"):
        real_renderer.render(pose, geom, ray_mask=np.zeros((64, 64), bool))


def test_render_drr_function_and_stats(real_renderer):
    pose, geom = sacrum_lateral_pose(), cios_geometry(16)
    img = render_drr(real_renderer.volume, pose, geom, step_mm=2.0)
    np.testing.assert_array_equal(img, real_renderer.render(pose, geom, step_mm=2.0))
    stats = real_renderer.last_stats
    assert stats.rays == stats.rays_hit == 256
    # a lateral chord is about the volume's width (366 mm) in 2 mm steps
    assert 100 * 256 < stats.samples < 200 * 256


def test_all_zero_volume_renders_zeros():
    vol = volume_centred(np.zeros((5, 6, 7), np.float32), (1, 1, 1), np.eye(3))
    geom = CArmGeometry((8, 8), 1000.0, (1.0, 1.0), (3.5, 3.5), 600.0)
    img = DRRRenderer(vol).render(pose_from_carm_angles(0, 0, (0, 0, 0), 600.0), geom)
    assert img.shape == (8, 8) and not img.any()


# --------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def small():
    vol = volume_centred(smooth_random_volume((10, 12, 14)), (2.0, 2.0, 2.0), np.eye(3))
    geom = CArmGeometry((16, 12), 1000.0, (2.0, 2.0), (7.5, 5.5), 600.0)
    return vol, DRRRenderer(vol), geom, pose_from_carm_angles(10, 5, (0, 0, 0), 600.0)


def test_source_inside_volume_is_rejected(small):
    vol, renderer, geom, _ = small
    inside = pose_from_carm_angles(0, 0, (0, 0, 0), 5.0)  # source 5 mm from the centre
    with pytest.raises(InputError, match=r"^pose: .*inside the CT volume box"):
        renderer.render(inside, geom)
    with pytest.raises(InputError, match="inside the CT volume box"):
        render_reference(vol, inside, geom)


def test_detector_missing_volume_is_rejected(small):
    vol, renderer, geom, _ = small
    away = pose_from_carm_angles(0, 0, (500.0, 0, 0), 600.0)  # looks 500 mm beside the volume
    with pytest.raises(InputError, match=r"^pose: no ray of the detector meets the CT volume"):
        renderer.render(away, geom)
    with pytest.raises(InputError, match="no ray"):
        render_reference(vol, away, geom)


def test_roi_missing_volume_is_rejected():
    vol = volume_centred(np.ones((4, 4, 4), np.float32), (2.0, 2.0, 2.0), np.eye(3))
    geom = CArmGeometry((64, 64), 1000.0, (2.0, 2.0), (31.5, 31.5), 600.0)
    pose = pose_from_carm_angles(0, 0, (0, 0, 0), 600.0)
    renderer = DRRRenderer(vol)
    assert renderer.render(pose, geom).max() > 0
    with pytest.raises(InputError, match=r"no ray of the detector region \(roi\)"):
        renderer.render(pose, geom, roi=(0, 0, 8, 8))


@pytest.mark.parametrize("spacing", [(0.0, 0.3), (0.3, -0.3)])
def test_geometry_with_bad_pixel_spacing_names_the_field(spacing):
    with pytest.raises(InputError, match="pixel_spacing_mm"):
        CArmGeometry((16, 16), 1000.0, spacing, (7.5, 7.5), 600.0)


@pytest.mark.parametrize("spacing", [(0.0, 1.0, 1.0), (1.0, -1.0, 1.0)])
def test_volume_with_bad_spacing_names_the_field(spacing):
    with pytest.raises(InputError, match=r"^spacing_mm: must be 3 numbers > 0"):
        AttenuationVolume(np.zeros((3, 3, 3), np.float32), (0, 0, 0), spacing, np.eye(3))


@pytest.mark.parametrize("step", [0.0, -1.0, float("nan"), "1"])
def test_bad_step_is_rejected(small, step):
    vol, renderer, geom, pose = small
    with pytest.raises(InputError, match=r"^step_mm: must be a finite number > 0"):
        renderer.render(pose, geom, step_mm=step)
    with pytest.raises(InputError, match=r"^step_mm:"):
        render_reference(vol, pose, geom, step_mm=step)


def test_mask_of_other_shape_is_rejected(small):
    vol, _, geom, pose = small
    mask = np.ones((10, 12, 13), bool)
    with pytest.raises(InputError, match=r"^mask: must have the volume's shape \(Z, Y, X\) = \(10, 12, 14\)"):
        DRRRenderer(vol, mask=mask)
    with pytest.raises(InputError, match=r"^mask:"):
        render_drr(vol, pose, geom, mask=mask)
    with pytest.raises(InputError, match=r"^mask:"):
        AttenuationVolume.from_ct(type("CT", (), {"hu": np.zeros((3, 3, 3)), "origin_mm": np.zeros(3),
                                                  "spacing_mm": np.ones(3), "direction": np.eye(3)})(),
                                  mask=mask)


@pytest.mark.parametrize("roi", [(0, 0, 17, 4), (-1, 0, 4, 4), (0, 0, 0, 4), (1.5, 0, 4, 4), (0, 0, 4)])
def test_bad_roi_is_rejected(small, roi):
    _, renderer, geom, pose = small
    with pytest.raises(InputError, match=r"^roi:"):
        renderer.render(pose, geom, roi=roi)


@pytest.mark.parametrize("factor", [0, 13, 2.0, True])
def test_bad_downsample_is_rejected(small, factor):
    _, renderer, geom, pose = small
    with pytest.raises(InputError, match=r"^downsample: must be an integer from 1 to 12"):
        renderer.render(pose, geom, downsample=factor)


def test_attenuation_in_hounsfield_units_is_rejected():
    with pytest.raises(InputError, match=r"^mu_per_mm: attenuation must be >= 0.*Hounsfield"):
        AttenuationVolume(np.full((3, 3, 3), -1000.0), (0, 0, 0), (1, 1, 1), np.eye(3))
    with pytest.raises(InputError, match=r"^mu_per_mm: contains NaN"):
        AttenuationVolume(np.full((3, 3, 3), np.nan), (0, 0, 0), (1, 1, 1), np.eye(3))


def test_wrong_argument_types_are_rejected(small):
    vol, renderer, geom, pose = small
    with pytest.raises(InputError, match=r"^pose: expected a Pose"):
        renderer.render("AP", geom)
    with pytest.raises(InputError, match=r"^geometry: expected a CArmGeometry"):
        renderer.render(pose, {"sid_mm": 1000})
    with pytest.raises(InputError, match=r"^volume: expected an AttenuationVolume"):
        DRRRenderer(np.zeros((3, 3, 3), np.float32))
    with pytest.raises(InputError, match=r"^direction: must be invertible"):
        AttenuationVolume(np.zeros((3, 3, 3), np.float32), (0, 0, 0), (1, 1, 1), np.zeros((3, 3)))
    # a 4 x 4 matrix is accepted as a pose (validated by Pose)
    np.testing.assert_array_equal(renderer.render(pose.matrix, geom), renderer.render(pose, geom))
    with pytest.raises(InputError, match="det = -1"):
        renderer.render(np.diag([1.0, 1.0, -1.0, 1.0]), geom)
