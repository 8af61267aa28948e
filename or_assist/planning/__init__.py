"""The planning side: editing a plan, measurements, checks, proposals, reslicing the CT.

Modules::

    checks   Safety checks of a plan against its CT, and the ``or-assist plan-check`` table.
    edit     The planner's edit model: a plan with undo/redo, catalogue snapping and safe saving.
    measure  Live distances of a planned implant to the landmarks and to the anterior sacral cortex.
    propose  Assisted planning: propose the standard three implants of a side from a few landmarks.
    reslice  Reformatted CT slices for the planner: axial, coronal, sagittal and implant-oblique planes.

Names are exported lazily (``lazy_loader``, as in scikit-image): importing this package
imports no submodule, ``from or_assist.planning import name`` imports only the one that
defines ``name``.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=['checks', 'edit', 'measure', 'propose', 'reslice'],
    submod_attrs={
        'checks': ['CHECK_NAMES', 'CLEARANCE_LANDMARK_KINDS', 'CheckResult', 'run_plan_checks', 'format_check_table', 'plan_check_exit_code', 'check_plan_file', 'bone_mask', 'segment_distance_mm', 'implant_surface_distance_mm'],
        'edit': ['DEFAULT_FAMILY', 'DEFAULT_LANDMARK_RADIUS_MM', 'MIN_PELVIS_EXTENT_MM', 'SnapResult', 'PlanEditor', 'snap_length', 'infer_side', 'check_pelvis_ct', 'save_plan_checked'],
        'measure': ['Measurement', 'distance_status', 'anterior_cortex_distance_mm', 'implant_measurements'],
        'propose': ['Proposal', 'SLOTS', 'propose_side', 'propose_plan_implants'],
        'reslice': ['ORTHOGONAL_KINDS', 'WINDOW_PRESETS', 'SlicePlane', 'ct_centre_lps', 'ct_bounds_lps', 'orthogonal_plane', 'oblique_planes', 'window_image'],
    },
)
