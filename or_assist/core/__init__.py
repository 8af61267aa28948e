"""Data types and maths every stage shares: geometry (poses, C-arm model, projection),
CT I/O, the plan model and its JSON, validation helpers and shared vocabularies.
Imports nothing else of or_assist.

Modules::

    ct/            CT volumes: reading and writing NIfTI/NRRD/MHA and DICOM series through SimpleITK,
    carm           C-arm positions as poses: clinical angles and the named SIJF views.
    carm_profiles  C-arm profiles: nominal geometry of common mobile C-arms (``calibration/profiles``).
    catalogue      The implant catalogue: the implant sizes a plan may use (``or_assist.catalogue/1``).
    geometry       C-arm geometry: intrinsics, distortion, projection and back-projection.
    instruments    Instruments the app follows in the images: the guide pin.
    jsonio         Reading and validating the JSON interchange files (see CONVENTIONS).
    outputs        Checking output paths before the work, and turning write failures into one line.
    plan           The virtual surgical plan: implant catalogue, implants, landmarks, views, JSON I/O.
    pose           Rigid transforms and the C-arm pose type T_source_from_patient (or_assist.pose/1).
    polygon        Plane polygons in image pixels: convex hull, area, centroid, point containment.
    validate       Checks for parameters and fields given by a user (numbers, vectors, choices).
    view_poses     Poses of a plan's named views (lateral, inlet, outlet, ap, axis) for a C-arm.
    vocabulary     The named choices shared by settings, file readers and the CLI (polarities, views).

Names are exported lazily (``lazy_loader``, as in scikit-image): importing this package
imports no submodule, ``from or_assist.core import name`` imports only the one that
defines ``name``.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=['ct', 'carm', 'carm_profiles', 'catalogue', 'geometry', 'instruments', 'jsonio', 'outputs', 'plan', 'polygon', 'pose', 'validate', 'view_poses', 'vocabulary'],
    submod_attrs={
        'carm': ['DEFAULT_INLET_TILT_DEG', 'DEFAULT_OUTLET_TILT_DEG', 'CArmAngles', 'pose_from_beam', 'pose_from_carm_angles', 'carm_angles_from_pose', 'beam_from_carm_angles', 'sijf_view_pose', 'derive_view_tilts_deg', 'patient_axes'],
        'carm_profiles': ['CArmProfile', 'PROFILE_SCHEMA', 'PROFILE_DIR', 'list_profiles', 'load_profile'],
        'catalogue': ['CATALOGUE_SCHEMA', 'DEFAULT_CATALOGUE_PATH', 'CatalogueItem', 'Catalogue', 'load_catalogue'],
        'geometry': ['CArmGeometry', 'project', 'project_with_depth', 'backproject', 'pixels_to_mm_at_depth', 'distort_normalized', 'undistort_normalized', 'load_geometry', 'save_geometry', 'GEOMETRY_SCHEMA'],
        'instruments': ['DEFAULT_PIN_DIAMETER_MM', 'DEFAULT_PIN_FACETS', 'GuidePin', 'guide_pin_mesh'],
        'jsonio': ['read_json', 'loads_json', 'MAX_JSON_BYTES', 'write_json', 'check_schema', 'field', 'field_float', 'field_bool', 'field_str', 'field_array', 'to_jsonable'],
        'outputs': ['check_output_file', 'check_output_dir', 'write_error', 'write_errors', 'write_reason', 'atomic_write', 'write_bytes_atomic', 'write_image', 'remove_quietly', 'quiet_stderr'],
        'plan': ['PLAN_SCHEMA', 'IMPLANT_SIDES', 'LANDMARK_KINDS', 'LANDMARK_SIDES', 'Implant', 'Landmark', 'ViewSpec', 'Plan', 'plan_to_dict', 'plan_from_dict', 'load_plan', 'save_plan', 'implant_vertex_directions', 'implant_mesh', 'default_views', 'check_implants_in_ct', 'load_plan_ct'],
        'pose': ['Pose', 'rotation_about_axis', 'rotation_angle_deg', 'load_pose', 'save_pose', 'POSE_SCHEMA'],
        'polygon': ['convex_hull_2d', 'polygon_area', 'polygon_centroid', 'polygon_contains'],
        'validate': ['Limit', 'is_finite_number', 'is_integer', 'check_integer', 'check_bool', 'check_finite', 'check_number', 'check_positive', 'check_vector', 'check_choice', 'check_range'],
        'view_poses': ['DEFAULT_SOURCE_TO_ISOCENTER_MM', 'view_tilt_deg', 'plan_view_pose', 'plan_view_poses',
                       'plan_carm_angles'],
        'vocabulary': ['POLARITIES', 'POLARITY_SETTINGS', 'DETECTED_POLARITIES', 'VIEW_KINDS', 'SIJF_VIEWS', 'IMPLANT_VIEW_KINDS', 'PATIENT_POSITIONS', 'SIDES', 'DISTORTION_MODELS'],
    },
)
