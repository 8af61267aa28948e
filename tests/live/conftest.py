"""Shared fixtures of the live-pipeline tests: the built-in sample case and C-arm turns."""

from __future__ import annotations

import pytest

from or_assist.core.carm import carm_angles_from_pose, patient_axes, pose_from_carm_angles


@pytest.fixture(scope="module")
def sample_case():
    """``(ct, plan, geometry)`` of the built-in sample pelvis."""
    from or_assist.sim.scenario.spec import load_sample_case

    return load_sample_case()


def turned_pose(pose, orbital_deg, tilt_deg, landmarks, source_to_isocentre_mm: float = 530.0):
    """``pose`` with the C-arm turned by ``orbital_deg`` / ``tilt_deg`` about the plan's patient
    axes (:mod:`or_assist.core.carm` signs), about the isocentre ``source_to_isocentre_mm`` along the beam."""
    axes = patient_axes(landmarks)
    a = carm_angles_from_pose(pose, axes=axes)
    iso = pose.source_position_lps_mm + source_to_isocentre_mm * pose.beam_direction_lps
    return pose_from_carm_angles(a.orbital_deg + orbital_deg, a.tilt_deg + tilt_deg, iso, source_to_isocentre_mm,
                                 axes=axes)
