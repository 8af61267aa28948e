"""C-arm and frame-grabber calibration from bead-phantom images (writes
``or_assist.geometry/1``). Imports only core. The phantom definitions and C-arm profiles
are data in the repository's top-level ``calibration/`` folder.

Modules::

    detect   Bead detection in a calibration image: dark blobs with sub-pixel centroids and sizes.
    dewarp   Image-intensifier dewarping (S-distortion) measured on a mounted bead grid (``or_assist.dewarp/1``).
    dewarp_joint  The geometry and the dewarp of a calibration refined together (least squares).
    match    Which detected bead is which: plane by size, grid cell by lattice growth and marker.
    phantom  Bead calibration phantoms (``or_assist.bead_phantom/1``): definition and file.
    result   What a calibration found: per-image results and the geometry with its fit quality.
    solve    C-arm calibration from images of a bead phantom (``or-assist calibrate``).

Names are exported lazily (``lazy_loader``, as in scikit-image): importing this package
imports no submodule, ``from or_assist.calibration import name`` imports only the one that
defines ``name``.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=['detect', 'dewarp', 'dewarp_joint', 'match', 'phantom', 'result', 'solve'],
    submod_attrs={
        'detect': ['BeadDetections', 'as_grey_image', 'detect_beads'],
        'dewarp': ['DEWARP_SCHEMA', 'Dewarp', 'fit_dewarp', 'calibrate_with_dewarp', 'in_plane_angle_rad', 'load_dewarp', 'save_dewarp'],
        'dewarp_joint': ['refine_jointly'],
        'match': ['PlaneMatch', 'split_planes', 'grow_lattice', 'match_marker', 'identify_beads'],
        'phantom': ['BEAD_PHANTOM_SCHEMA', 'PHANTOM_DIR', 'BeadPlane', 'BeadPhantom', 'load_bead_phantom', 'grid_symmetries'],
        'result': ['ImageCalibration', 'CalibrationResult'],
        'solve': ['DISTORTION_MODELS', 'calibrate', 'parse_roi'],
    },
)
