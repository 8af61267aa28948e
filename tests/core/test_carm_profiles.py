"""The C-arm profiles shipped in calibration/profiles."""

import json

import numpy as np
import pytest

from or_assist.core.carm_profiles import list_profiles, load_profile
from or_assist.errors import InputError, SchemaError


def test_at_least_three_profiles_flat_panel_and_ii():
    names = list_profiles()
    assert len(names) >= 3
    kinds = {load_profile(n).detector_type for n in names}
    assert kinds == {"flat_panel", "image_intensifier"}


@pytest.mark.parametrize("name", list_profiles())
def test_profile_is_consistent(name):
    p = load_profile(name)
    g = p.geometry
    assert 900 <= g.sid_mm <= 1100 and 400 <= g.source_to_isocenter_mm < g.sid_mm
    assert g.detector_size_mm[0] == pytest.approx(p.field_size_mm, abs=0.2)
    assert p.sources
    g256 = p.geometry_at(256)
    assert g256.image_size_px == (256, 256)
    assert g256.detector_size_mm[0] == pytest.approx(g.detector_size_mm[0])
    # the principal point stays at the same physical place
    np.testing.assert_allclose((np.array(g256.principal_point_px) + 0.5) * g256.pixel_spacing_mm[0],
                               (np.array(g.principal_point_px) + 0.5) * g.pixel_spacing_mm[0])


def test_cios_matches_domain_notes():
    g = load_profile("siemens_cios_fusion").geometry
    assert (g.sid_mm, g.source_to_isocenter_mm, g.image_size_px) == (1020.0, 530.0, (1536, 1536))
    assert g.pixel_spacing_mm == (0.194, 0.194)


def test_unknown_profile_lists_known():
    with pytest.raises(InputError, match="unknown C-arm profile; known profiles: .*siemens_cios_fusion"):
        load_profile("no_such_carm")


def test_bad_profile_file(tmp_path):
    doc = json.loads((load_profile.__globals__["PROFILE_DIR"] / "siemens_cios_fusion.json").read_text())
    doc["geometry"]["sid_mm"] = "far"
    (tmp_path / "p.json").write_text(json.dumps(doc))
    with pytest.raises(SchemaError, match=r"p.json: geometry.*sid_mm"):
        load_profile(tmp_path / "p.json")
    del doc["sources"]
    doc["geometry"]["sid_mm"] = 1000
    (tmp_path / "p.json").write_text(json.dumps(doc))
    with pytest.raises(SchemaError, match="missing field 'sources'"):
        load_profile(tmp_path / "p.json")
