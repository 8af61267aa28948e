"""Post-operative CT evaluation: placed vs planned implants, one case or a cohort.

Modules::

    added       Metal the pre-op CT lacks: implants segmented from the post-op minus the registered pre-op.
    cohort      Cohort evaluation: many post-op cases in one table and a learning-curve plot.
    evaluate    Post-operative CT evaluation of one case: planned vs placed implants.
    match       Find the planned implants among the metal of a registered post-op CT.
    metal       Metal in a post-operative CT: the scan's own metal threshold and filled implant channels.
    pieces      Metal objects that hold more than one implant, and implants broken into pieces.
    prism_fit   Sub-voxel fit of a triangular implant to its metal in a post-op CT.
    register3d  Rigid 3D/3D registration of a post-operative CT to the pre-operative (planning) CT.
    register_check Is a post-op CT-to-CT registration right? The bone overlap and the acceptance check.
    register_global Global start of the CT-to-CT registration: a rotation grid with an exhaustive shift search per rotation.
    register_local The local optimiser of the CT-to-CT registration: images, masks and Mattes MI runs, level by level.
    segment     Implant segmentation in a post-operative CT: metal objects, their axes, tips and entries.

Names are exported lazily (``lazy_loader``, as in scikit-image): importing this package
imports no submodule, ``from or_assist.postop import name`` imports only the one that
defines ``name``.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=['added', 'cohort', 'evaluate', 'match', 'metal', 'pieces', 'prism_fit', 'register3d', 'register_check', 'register_global', 'register_local', 'segment'],
    submod_attrs={
        'added': ['ADDED_HU', 'added_hu', 'regroup_added_metal'],
        'cohort': ['COHORT_SCHEMA', 'CohortCase', 'parse_case_argument', 'read_cohort_file', 'cohort_summary', 'draw_learning_curve', 'CohortFiles', 'evaluate_cohort'],
        'evaluate': ['EVALUATION_SCHEMA', 'ImplantEvaluation', 'CaseEvaluation', 'evaluate_case', 'EvaluationFiles', 'evaluate_files'],
        'match': ['FoundImplant', 'LocatedImplants', 'locate_implants'],
        'prism_fit': ['PrismFit', 'prism_planes', 'fit_prism', 'roll_about_axis_rad'],
        'register3d': ['Registration3D', 'register_postop_to_preop', 'boxes_overlap_fraction'],
        'register_check': ['RegistrationCheck', 'check_registration', 'bone_dice', 'pose_to_sitk', 'shear_overlap'],
        'register_global': ['GlobalCandidate', 'global_candidates', 'axis_aligned_bone'],
        'register_local': ['LevelImages', 'registration_image', 'bone_masks', 'mask_centroid_mm', 'euler_to_pose'],
        'metal': ['METAL_FLOOR_HU', 'METAL_CEILING_HU', 'metal_threshold_hu', 'fill_metal_channels'],
        'pieces': ['single_width_mm', 'item_volume_mm3', 'split_touching'],
        'segment': ['MetalObject', 'FittedImplant', 'find_metal_objects', 'fit_implant', 'split_object', 'item_centroid_from_entry_mm', 'candidate_items'],
    },
)
