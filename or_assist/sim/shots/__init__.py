"""Realistic fluoroscopy shots from a CT: the imaging chain after the DRR.

Modules::

    chain       The imaging chain of the shot simulator: blur, glare, noise, collimation, framing, text.
    processing  Intensifier and image-processing steps: vignetting, S-distortion, edge enhancement.
    settings    The settings of a simulated shot: physics, detector and video (:class:`ShotSettings`).
    simulate    Realistic synthetic fluoroscopy: one C-arm shot as a frame grabber would deliver it.

Names are exported lazily (``lazy_loader``, as in scikit-image): importing this package
imports no submodule, ``from or_assist.sim.shots import name`` imports only the one that
defines ``name``.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=['chain', 'processing', 'settings', 'simulate'],
    submod_attrs={
        'chain': ['FrameLayout', 'supersampled_geometry', 'bin_mean', 'gaussian_blur', 'glare', 'compress_range', 'poisson_counts', 'field_mask', 'frame_layout', 'place_in_frame', 'frame_geometry', 'burn_text', 'quantise'],
        'processing': ['vignetting_gain', 's_distortion', 's_distortion_shift_px', 'unsharp_mask'],
        'settings': ['COLLIMATIONS', 'DEFAULT_TEXT_TOP', 'DEFAULT_TEXT_BOTTOM', 'ShotSettings'],
        'simulate': ['SimulatedShot', 'simulate_shot', 'check_shot_inputs', 'shot_from_transmission'],
    },
)
