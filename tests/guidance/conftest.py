"""Shared fixtures of the guidance tests: the real-CT plan and a 1080p C-arm video geometry."""

from __future__ import annotations

import pytest

from or_assist.core.carm_profiles import load_profile
from or_assist.core.plan import load_plan
from tests.conftest import REAL_PLAN


@pytest.fixture(scope="module")
def plan():
    """The plan made on the real-CT fixture (``tests/data``)."""
    return load_plan(REAL_PLAN)


@pytest.fixture(scope="module")
def geometry():
    """A Cios Fusion seen through a 1920 x 1080 grabber (modules may override it)."""
    return load_profile("siemens_cios_fusion").geometry_at(512).with_changes(
        image_size_px=(1920, 1080), pixel_spacing_mm=(0.2759, 0.2759), principal_point_px=(959.5, 539.5))
