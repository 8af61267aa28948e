"""2-D/3-D registration of fluoroscopy shots to the CT.

Modules::

    depth        The last step of a registration: the depth along the beam, on a finer level.
    files        Registering one shot given as files: read the inputs, register, write the result.
    global_search A global stage before the 3-D search: rotation hypotheses, in-plane shift by masked NCC.
    init2d       Fast 2-D initialisation: in-plane shift, rotation and scale of a shot against a view.
    joint        Two shots of different views registered jointly: the patient static, two C-arm poses.
    joint_model  Joint registration's settings, result and the relative-motion discrepancy.
    optimize     Derivative-free optimisers for registration: a seeded CMA-ES and a compass search.
    optimize_pycma The reference CMA-ES (pycma, optional extra) behind cma_es's contract, for comparison.
    pipeline     2-D/3-D registration of a fluoroscopy shot to the CT: the pipeline.
    pose_params  The 6-parameter pose update registration searches over, and pose error measures.
    settings     How :class:`~or_assist.register.pipeline.Registrar` registers: stages, thresholds, settings.
    shot         A fluoroscopy shot made ready for registration: attenuation-like image pyramid and masks.
    similarity   Image similarity measures for 2D/3D registration, all restricted to a mask.
    uncertainty  How sharply a registration's optimum pins the pose down, and the error that implies.

Names are exported lazily (``lazy_loader``, as in scikit-image): importing this package
imports no submodule, ``from or_assist.register import name`` imports only the one that
defines ``name``.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=['depth', 'files', 'global_search', 'init2d', 'joint', 'joint_model', 'optimize', 'optimize_pycma', 'pipeline', 'pose_params', 'settings', 'shot', 'similarity', 'uncertainty'],
    submod_attrs={
        'depth': ['DEPTH_DRRS', 'DepthRefine', 'refine_depth'],
        'files': ['register_files', 'register_pair_files'],
        'global_search': ['GlobalSearch', 'GlobalCandidate', 'COMPARE', 'edge_image', 'match_shift', 'ncc_maps',
                          'peak_shift', 'global_candidates'],
        'init2d': ['Alignment2D', 'similarity_matrix', 'align_2d', 'pose_from_2d', 'resample_to_geometry'],
        'joint': ['JointRegistrar'],
        'joint_model': ['JOINT_STAGES', 'JointSettings', 'JointResult', 'relative_motion_discrepancy'],
        'optimize': ['OptimResult', 'cma_es', 'compass_search', 'quadratic_model_search', 'parabola_vertex'],
        'optimize_pycma': ['pycma_es'],
        'pipeline': ['REGISTRATION_SCHEMA', 'RegistrationResult', 'Registrar', 'registration_ct'],
        'pose_params': ['PARAMETER_NAMES', 'update_matrix', 'apply_update', 'isocenter_source_mm', 'pose_error', 'target_error_mm', 'projection_distance_at_isocenter_mm'],
        'settings': ['CONFIDENCE_THRESHOLD', 'RESTART_BELOW', 'SECOND_STAGE_BELOW', 'LATER_STARTS', 'GLOBAL_STARTS', 'DEFAULT_STAGES', 'COBYQA_FINE_STAGES', 'TRACK_STAGES', 'DEFAULT_TIME_BUDGET_S', 'MAX_TIME_BUDGET_S', 'Stage', 'RegistrationSettings'],
        'shot': ['ShotLevel', 'PreparedShot', 'ShotProblem', 'frame_to_unit', 'field_and_exclusions', 'prepare_shot', 'scaled_geometry'],
        'similarity': ['METRICS', 'DEFAULT_METRIC', 'FixedImage', 'prepare_fixed', 'ncc', 'gradient_correlation', 'patch_gradient_ncc', 'gradients'],
        'uncertainty': ['CURVATURE_STEPS', 'FLAT_SIGMA', 'ERROR_SCALE', 'PROBE_DRRS', 'PoseUncertainty', 'pose_uncertainty'],
    },
)
