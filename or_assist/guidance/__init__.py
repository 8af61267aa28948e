"""Guide-pin detection, 2-D and two-view 3-D deviation, cues, overlay drawing.

Modules::

    cues           Cues for the surgeon: a colour and short text lines from a deviation, in anatomical terms.
    deviation      Deviation of the guide pin from the planned implant axis in one registered shot (2-D).
    overlay        Overlay drawing: plan, detected pin, deviation arrow and cue text on a shot.
    pin            Guide-pin detection in one fluoroscopy shot.
    pin_files      The guide pin against the plan in one or two registered shots given as files.
    shot_guidance  One registered shot's guidance: the pin found near the plan, its 2-D deviation and cue.
    triangulate    Two registered shots give the guide pin in 3-D, and its deviation from the planned implant.

Names are exported lazily (``lazy_loader``, as in scikit-image): importing this package
imports no submodule, ``from or_assist.guidance import name`` imports only the one that
defines ``name``.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=['cues', 'deviation', 'overlay', 'pin', 'pin_files', 'shot_guidance', 'triangulate'],
    submod_attrs={
        'cues': ['TIP_NOT_SEEN_TEXT', 'CUE_LEVELS', 'CUE_COLOURS_BGR', 'SAFETY_LANDMARK_KINDS', 'CueThresholds', 'Cue', 'anatomical_frame', 'shot_cue', 'judged_apex_mm', 'cue_3d', 'safety_warnings_3d', 'safety_warnings_shot'],
        'deviation': ['END_ON_FORESHORTENING', 'MIN_RAY_AXIS_ANGLE_DEG', 'ShotDeviation', 'shot_deviation', 'check_shot_inputs', 'ray_line_closest'],
        'triangulate': ['MIN_VIEW_ANGLE_DEG', 'MIN_PLANE_ANGLE_DEG', 'TriangulationRefused', 'ViewUncertainty', 'Pin3D', 'Deviation3D', 'triangulate_pin', 'two_view_deviation'],
        'overlay': ['MIN_TEXT_HEIGHT_PX', 'TEXT_HEIGHT_FRACTION', 'ACTIVE_BGR', 'OTHER_BGR', 'NOT_REGISTERED_TEXT', 'text_height_px', 'draw_text_block', 'draw_overlay'],
        'pin': ['PinDetectorSettings', 'PinPrior', 'PinDetection', 'attenuation_from_frame', 'detect_pin'],
        'pin_files': ['PIN_DEVIATION_SCHEMA', 'REGISTERED_POSE_SIGMA', 'PinDeviationFiles', 'pin_deviation_files', 'read_pose_or_registration'],
        'shot_guidance': ['ShotGuidance', 'usable_pixels', 'axis_in_field', 'guide_shot'],
    },
)
