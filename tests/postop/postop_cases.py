"""Synthetic post-op cases built from the real 3 mm CT, cached per test session.

Not a test module: ``tests/postop/test_postop*.py`` import it. Each case burns the placed
implants (the plan's, perturbed by known apex shifts and tilts) into the real CT moved by
a known rigid motion (:mod:`or_assist.sim.postop_ct`).
"""

from __future__ import annotations

import functools

import numpy as np

from or_assist.core.ct.load import crop_ct, load_ct
from or_assist.core.ct.volume import CTVolume
from or_assist.core.pose import Pose
from or_assist.core.plan import implant_mesh, load_plan
from or_assist.sim.postop_ct import implant_fraction_volume, perturbed_implant, rigid_motion, synthesize_postop_ct
from tests.conftest import REAL_CT_DIR, REAL_PLAN

PLAN_PATH = REAL_PLAN
REAL_CT = REAL_CT_DIR / "ct_abdomen_pelvis_3mm.nii.gz"
SACRUM_MM = (0.0, -100.0, 210.0)

#: (apex shift mm, tilt deg, tilt axis or None) per planned implant.
PERTURB_A = {"R1": ([2.5, 1.5, -1.0], 4.0, None), "R2": ([-1.0, 2.0, 2.0], 2.5, [0, 1, 0]),
             "R3": ([1.5, -2.5, 0.5], 5.0, [1, 1, 0])}
MOTION_A = ([2.0, -1.5, 3.0], [4.0, -3.0, 2.5])
#: case B: R3 pushed medially into the right S2 foramen; the scan in other coordinates.
PERTURB_B = {"R1": ([-2.0, 0.5, 1.5], 3.0, [0, 0, 1]), "R2": ([1.0, -1.0, -2.5], 1.5, None),
             "R3": ([10.0, 7.0, -1.0], 3.0, None)}
MOTION_B = ([-3.0, 2.0, -2.5], [-5.0, 6.0, -4.0])
FRAME_SHIFT_B_MM = (40.0, -250.0, 300.0)


@functools.lru_cache(maxsize=None)
def plan():
    return load_plan(PLAN_PATH)


@functools.lru_cache(maxsize=None)
def real_ct() -> CTVolume:
    return load_ct(REAL_CT)


@functools.lru_cache(maxsize=None)
def pelvis_ct() -> CTVolume:
    """The real CT cropped to the pelvis (sacrum and the left hip prosthesis)."""
    return crop_ct(real_ct(), [-160.0, -280.0, 94.0], [160.0, -20.0, 300.0])


def placed(perturb: dict) -> list:
    return [perturbed_implant(i, *perturb[i.id]) for i in plan().implants]


@functools.lru_cache(maxsize=None)
def case(name: str):
    """(post-op CT, placed implants (plan frame), true T_preop_from_postop)."""
    if name == "A":
        imps, motion, shift = placed(PERTURB_A), rigid_motion(*MOTION_A, centre_mm=SACRUM_MM), None
    elif name == "B":
        imps, motion, shift = placed(PERTURB_B), rigid_motion(*MOTION_B, centre_mm=SACRUM_MM), FRAME_SHIFT_B_MM
        extra = perturbed_implant(plan().implant("R3"), [0.0, 4.0, -16.0], 3.0)   # a 4th, unplanned implant
        imps = imps + [extra]
    elif name == "none":
        imps, motion, shift = [], rigid_motion(*MOTION_A, centre_mm=SACRUM_MM), None
    else:
        raise KeyError(name)
    post = synthesize_postop_ct(pelvis_ct(), imps, motion, noise_hu=10.0, streak_hu=100.0, seed=len(name))
    if shift is not None:       # another scanner frame: same voxels, origin elsewhere
        post = CTVolume(post.hu, post.origin_mm + np.asarray(shift), post.spacing_mm, post.direction,
                        source=post.source)
        motion = Pose.from_rotation_translation(np.eye(3), shift).compose(motion)
    planned_ids = {i.id for i in plan().implants}
    return post, [i for i in imps[:len(planned_ids)]], motion.inverse()


@functools.lru_cache(maxsize=None)
def evaluation(name: str):
    from or_assist.postop.evaluate import evaluate_case

    return evaluate_case(plan(), case(name)[0], real_ct())


def true_deviation(placed_implant) -> tuple[float, float, float]:
    """(apex deviation mm, angle deg, entry deviation mm) of a placed implant vs its plan."""
    p = plan().implant(placed_implant.id)
    c = float(np.clip(placed_implant.axis_unit @ p.axis_unit, -1.0, 1.0))
    return (float(np.linalg.norm(placed_implant.apex_lps_mm - p.apex_lps_mm)), float(np.degrees(np.arccos(c))),
            float(np.linalg.norm(placed_implant.entry_lps_mm - p.entry_lps_mm)))


def r2_box():
    """Planned implant R2 (as placed, unperturbed), an empty 2 mm box 6 mm around it and its metal fraction there."""
    imp = perturbed_implant(plan().implant("R2"), [0.0, 0.0, 0.0], 0.0)
    v, _ = implant_mesh(imp)
    lo, hi = v.min(axis=0) - 6.0, v.max(axis=0) + 6.0
    n = np.ceil((hi - lo) / 2.0).astype(int) + 1
    grid = CTVolume(np.zeros(n[::-1], np.float32), lo, [2.0, 2.0, 2.0], np.eye(3))
    return imp, grid, implant_fraction_volume(grid, [implant_mesh(imp)], 6).astype(np.float64)
