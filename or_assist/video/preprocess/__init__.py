"""From a grabbed video frame to a registration-ready shot: field of view, text and
metal masks, polarity, pyramid.

Modules::

    fov      The collimated field of view of a fluoroscopy frame: detection and tracking.
    fov_fit  Robust fits behind :func:`or_assist.video.preprocess.fov.detect_field_of_view`.
    frame    Frame input and orientation for shot preprocessing.
    masks    Masks of a fluoroscopy frame: burnt-in text, and metal and pins.
    polarity Polarity of a fluoroscopy frame: is bone dark (the usual display) or bright (inverted)?
    pyramid  Contrast normalisation and the mask-aware image pyramid used by registration.
    remap    A frame's geometry and field of view carried through region, flips, crop and undistortion.
    shot     Shot preprocessing: from a video frame to the float image and mask that registration uses.

Names are exported lazily (``lazy_loader``, as in scikit-image): importing this package
imports no submodule, ``from or_assist.video.preprocess import name`` imports only the one that
defines ``name``.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=['fov', 'fov_fit', 'frame', 'masks', 'polarity', 'pyramid', 'remap', 'shot'],
    submod_attrs={
        'fov': ['FOV_SHAPES', 'FieldOfView', 'detect_field_of_view', 'FieldOfViewTracker', 'check_fov', 'gray_and_fov'],
        'fov_fit': ['coarse_rectangle', 'fine_circle', 'fine_rectangle', 'ransac_circle', 'fit_circle', 'arc_coverage'],
        'frame': ['ROTATIONS_DEG', 'as_gray_uint8', 'colourfulness', 'Orientation'],
        'masks': ['detect_text_mask', 'metal_mask'],
        'polarity': ['detect_polarity', 'polarity_score'],
        'pyramid': ['normalise'],
        'remap': ['apply_distortion', 'frame_geometry', 'orient_fov', 'shift_fov', 'undistort_fov', 'undistort_maps'],
        'shot': ['VIDEO_RESPONSES', 'PreprocessSettings', 'PreprocessedShot', 'preprocess_shot'],
    },
)
