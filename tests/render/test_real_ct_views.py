"""Virtual views of the real CT look like a C-arm's: bone darker than the soft tissue beside
it by a clear margin, most of the grey range used (issue: washed-out grey library PNGs)."""

from __future__ import annotations

import numpy as np
import pytest

from or_assist.core.carm_profiles import load_profile
from or_assist.core.ct.load import load_ct
from or_assist.core.plan import load_plan
from or_assist.render.display import DisplaySettings, metering_mask
from or_assist.render.drr import AttenuationVolume, DRRRenderer
from or_assist.render.implants import default_mu_per_mm, metal_line_integrals
from or_assist.render.views.build import build_view_library
from or_assist.render.view_quality import local_bone_contrast
from tests.conftest import REAL_PLAN

BONE_HU = 250.0


@pytest.fixture(scope="module")
def real_views(real_ct_path):
    plan = load_plan(REAL_PLAN)
    ct = load_ct(real_ct_path)
    geometry = load_profile("siemens_cios_fusion").geometry_at(512)
    bone = DRRRenderer(AttenuationVolume.from_ct(ct, mask=ct.hu > BONE_HU))
    mus = [default_mu_per_mm(imp, 60.0) for imp in plan.implants]
    out = {}
    for name, settings in (("carm", None), ("plain", DisplaySettings())):
        lib = build_view_library(plan, geometry, ct=ct, size_px=128, neighbourhood_deg=None,
                                 display_settings=settings)
        rows = []
        for i, e in enumerate(lib.entries):
            no_metal = metal_line_integrals(e.pose, geometry, plan.implants, mus, downsample=e.downsample) < 0.05
            rows.append((e.name, lib.display[i], bone.render(e.pose, geometry, downsample=e.downsample), no_metal))
        out[name] = rows
        out[f"{name} library"] = lib
    out["plan"] = plan
    return out


def test_real_ct_views_show_bone_dark_against_soft_tissue(real_views):
    carm, plain = real_views["carm"], real_views["plain"]
    assert len(carm) == 12                     # 3 implants x lateral, inlet, outlet, axis
    for (name, img, bone_path, valid), (_, img_plain, _, _) in zip(carm, plain):
        contrast = local_bone_contrast(img, bone_path, valid)
        before = local_bone_contrast(img_plain, bone_path, valid)
        assert contrast > 25.0, name                         # a clear margin, in every view
        assert contrast > 2.0 * before, name                 # the plain chain washes bone out
        centre = metering_mask(img.shape, 0.6, valid)
        spread = np.percentile(img[centre], 95) - np.percentile(img[centre], 5)
        assert spread > 0.6 * 255, name                      # most of the grey range, at the centre
        assert img[valid].min() <= 10 and img[valid].max() >= 245, name


def test_plan_sheet_and_view_pngs_carry_the_views_and_their_angles(real_views, tmp_path):
    """The printouts show the C-arm look's images and each view's angles as the
    radiographer sets them."""
    import cv2

    from or_assist.render.plan_sheet import write_plan_sheet
    from or_assist.render.views.png import render_view_png

    lib, plan = real_views["carm library"], real_views["plan"]
    paths = write_plan_sheet(plan, lib, (), tmp_path, profile="siemens_cios_fusion")
    html = paths["html"].read_text(encoding="utf-8")
    assert "R1 lateral: C-arm orbital RAO 90 deg, tilt 0 deg" in html
    assert "R1 inlet: C-arm orbital 0 deg, tilt CAUD 25 deg" in html
    assert cv2.imread(str(paths["png"])) is not None
    i = lib.index("R1 lateral")
    png = render_view_png(lib, i)
    s = png.shape[1] // lib.display[i].shape[1]
    body = cv2.cvtColor(png[:lib.display[i].shape[0] * s], cv2.COLOR_BGR2GRAY)
    big = cv2.resize(lib.display[i], (body.shape[1], body.shape[0]), interpolation=cv2.INTER_CUBIC)
    assert np.median(np.abs(body.astype(int) - big.astype(int))) <= 1   # the PNG shows the library's image


def test_or_display_virtual_view_of_the_real_ct_uses_the_carm_look(real_ct_path):
    """Without a view library the OR display's virtual view is rendered from the CT through
    the same default chain: bone shows darker than the soft tissue beside it."""
    from or_assist.live.pipeline import LivePipeline

    plan = load_plan(REAL_PLAN)
    ct = load_ct(real_ct_path)
    geometry = load_profile("siemens_cios_fusion").geometry_at(128)
    renderer = DRRRenderer(AttenuationVolume.from_ct(ct))

    class NoRegistration:                       # the virtual view needs no registration
        def register(self, *args, **kwargs):
            raise AssertionError("not called")

    pipe = LivePipeline(plan, geometry, registrar=NoRegistration(), renderer=renderer)
    bgr = pipe.virtual_view("R1", "lateral", size_px=128)
    assert bgr.shape == (128, 128, 3)
    grey = (bgr[..., 0] == bgr[..., 1]) & (bgr[..., 1] == bgr[..., 2])   # not drawn over by the outlines
    pose = pipe.planned_pose("R1", "lateral")
    bone_path = DRRRenderer(AttenuationVolume.from_ct(ct, mask=ct.hu > BONE_HU)).render(pose, geometry)
    assert local_bone_contrast(bgr[..., 1], bone_path, grey) > 25.0
