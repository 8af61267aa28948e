"""A DICOM shot of the sample pelvis for the tests of the DICOM route (not a test module):
an inlet of L1, the C-arm turned off its plan, at a 192 px detector whose geometry is in the
header (the sample case's calibration is 512 px), and registration settings short enough
that a shot registers in a second or two from the header's angles (close to the truth)."""

from __future__ import annotations

from or_assist.core.carm_profiles import load_profile
from or_assist.register.settings import RegistrationSettings, Stage
from tests.live.conftest import turned_pose

DETECTOR = load_profile("siemens_cios_fusion").geometry_at(192)   # the DICOM image's pixels

#: One short local stage: the header's angles start close to the truth.
SHORT = RegistrationSettings(stages=(Stage(64, 3.0, "compass", 60, (0.5, 0.5, 0.5, 1.0, 1.0, 2.0)),),
                             max_starts=1, refine_best=None, agreement_mm=None, start_agreement_mm=None,
                             time_budget_s=None)


def sample_dicom_scene():
    """``(plan, calibrated geometry, Registrar at it with SHORT, true pose, XA dataset)``."""
    from or_assist.core.view_poses import plan_view_pose
    from or_assist.register.pipeline import Registrar
    from or_assist.render.drr import AttenuationVolume, DRRRenderer
    from or_assist.sim.dicom_carm import field_windowed_values, shot_dataset
    from or_assist.sim.scenario.spec import load_sample_case
    from or_assist.sim.shots.settings import ShotSettings
    from or_assist.sim.shots.simulate import simulate_shot

    ct, plan, calibrated = load_sample_case()
    renderer = DRRRenderer(AttenuationVolume.from_ct(ct))
    planned = plan_view_pose(plan, "L1", "inlet", geometry=DETECTOR)
    truth = turned_pose(planned, -5.0, 4.0, plan.landmarks, DETECTOR.source_to_isocenter_mm)
    sim = simulate_shot(renderer, truth, DETECTOR, settings=ShotSettings(seed=21, supersample=1))
    ds = shot_dataset(field_windowed_values(sim), DETECTOR, truth, patient_position="prone", instance_number=1)
    return plan, calibrated, Registrar(renderer, calibrated, SHORT), truth, ds
