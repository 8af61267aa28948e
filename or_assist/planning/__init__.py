"""The planning side: editing a plan, measurements, checks, proposals, reslicing the CT.

Modules::

    checks   Safety checks of a plan against its CT (``or-assist plan-check``).
    edit     The planner's edit model: a plan with undo/redo.
    joint    The sacroiliac joint on the HU profile along an implant's axis.
    measure  Live distances of a planned implant to the landmarks and to the anterior sacral cortex.
    propose  Assisted planning: propose the standard three implants of a side from a few landmarks.
    reslice  Reformatted CT slices for the planner: axial, coronal, sagittal and implant-oblique planes.
    save     Safe saving of a plan, and whether a CT can hold a pelvis plan at all.
    snap     Catalogue snapping of a planned implant, and its side.

Names are exported lazily (``lazy_loader``, as in scikit-image): importing this package
imports no submodule, ``from or_assist.planning import name`` imports only the one that
defines ``name``.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=['checks', 'edit', 'joint', 'measure', 'propose', 'reslice', 'save', 'snap'],
    submod_attrs={
        'checks': ['CHECK_NAMES', 'CLEARANCE_LANDMARK_KINDS', 'CheckResult', 'run_plan_checks', 'plan_check_exit_code', 'check_plan_file', 'PlanCheckReport', 'bone_mask'],
        'edit': ['DEFAULT_FAMILY', 'DEFAULT_LANDMARK_RADIUS_MM', 'PlanEditor'],
        'joint': ['find_si_joint', 'si_joint_prior'],
        'measure': ['Measurement', 'distance_status', 'anterior_cortex_distance_mm', 'implant_measurements', 'segment_distance_mm', 'point_segment_distance_mm', 'implant_surface_distance_mm'],
        'propose': ['Proposal', 'SLOTS', 'propose_side', 'propose_plan_implants'],
        'save': ['MIN_PELVIS_EXTENT_MM', 'check_pelvis_ct', 'save_plan_checked'],
        'snap': ['SnapResult', 'snap_length', 'infer_side'],
        'reslice': ['ORTHOGONAL_KINDS', 'WINDOW_PRESETS', 'SlicePlane', 'ct_centre_lps', 'ct_bounds_lps', 'orthogonal_plane', 'oblique_planes', 'window_image'],
    },
)
