"""Realistic fluoroscopy shots from a CT: the imaging chain after the DRR.

Modules::

    appearance       Appearance families: shots that differ from DRRs the way real C-arm images do.
    appearance_shot  One shot with an Appearance: polychromatic rays, then the chain.
    chain            The imaging chain of the shot simulator: blur, glare, noise, collimation, framing, text.
    processing       Intensifier and image-processing steps: vignetting, S-distortion, edge enhancement.
    settings         The settings of a simulated shot: physics, detector and video (:class:`ShotSettings`).
    simulate         Realistic synthetic fluoroscopy: one C-arm shot as a frame grabber would deliver it.
    spectrum         Polychromatic X-ray physics: tube spectra, materials, beam hardening.
    clutter          Metal the CT and the shot do not share: rails, retractors, cables; a hip prosthesis.

Names are exported lazily (``lazy_loader``, as in scikit-image): importing this package
imports no submodule, ``from or_assist.sim.shots import name`` imports only the one that
defines ``name``.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=['appearance', 'appearance_shot', 'chain', 'clutter', 'processing', 'settings', 'simulate', 'spectrum'],
    submod_attrs={
        'appearance': ['R', 'APPEARANCE_FAMILIES', 'Appearance', 'draw_appearance'],
        'appearance_shot': ['appearance_spectrum', 'simulate_appearance_shot'],
        'chain': ['FrameLayout', 'supersampled_geometry', 'bin_mean', 'gaussian_blur', 'glare', 'compress_range', 'poisson_counts', 'field_mask', 'frame_layout', 'place_in_frame', 'frame_geometry', 'burn_text', 'quantise'],
        'clutter': ['EXTRA_METAL_KINDS', 'ExtraMetal', 'body_box_lps_mm', 'prism_mesh', 'extra_metal_meshes', 'add_ct_metal'],
        'processing': ['vignetting_gain', 's_distortion', 's_distortion_shift_px', 'unsharp_mask'],
        'settings': ['COLLIMATIONS', 'DEFAULT_TEXT_TOP', 'DEFAULT_TEXT_BOTTOM', 'ShotSettings'],
        'simulate': ['SimulatedShot', 'simulate_shot', 'check_shot_inputs', 'shot_from_transmission'],
        'spectrum': ['MATERIALS', 'Spectrum', 'kramers_spectrum', 'monochromatic_spectrum', 'material_mu_per_mm', 'polychromatic_transmission', 'hu_to_water_bone'],
    },
)
