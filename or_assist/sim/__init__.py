"""Simulation: the phantom pelvis, the sample case, the simulated C-arm, the realistic
shot simulator, synthetic post-op CTs. Feeds the demo, tests and benchmarks only:
nothing else in or_assist imports it.

Modules::

    phantom/   The analytic phantom pelvis CT (constructive solid geometry) and its landmarks.
    calibration_phantom  A bead calibration phantom as an attenuation volume, to simulate its images.
    scenario/  The simulated C-arm: scripted scenarios played as a frame source.
    shots/     Realistic fluoroscopy shots from a CT: the imaging chain after the DRR.
    dicom_carm  The simulated C-arm's DICOM output: shots as XA/RF/DX/SC objects with geometry tags.
    ct_series  A CT written as a DICOM series (pydicom), as a scanner exports it, straight or gantry-tilted.
    pin_cases  Simulated guide-pin cases on the real CT for the guidance tests and benchmark.
    postop_ct  Synthetic post-operative CTs with known ground truth, for tests and benchmarks.
    postop_scanner  Synthetic post-op CTs as scanners make them: own grid, tilt, blooming, streaks, motion.
    sample     The built-in sample case: the synthetic pelvis CT, its plan and a C-arm geometry.

Names are exported lazily (``lazy_loader``, as in scikit-image): importing this package
imports no submodule, ``from or_assist.sim import name`` imports only the one that
defines ``name``.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=['phantom', 'scenario', 'shots', 'calibration_phantom', 'ct_series', 'dicom_carm', 'pin_cases', 'postop_ct', 'postop_scanner',
                'sample'],
    submod_attrs={
        'calibration_phantom': ['bead_phantom_volume', 'simulate_phantom_on_cover'],
        'ct_series': ['write_ct_series', 'scanner_slice_positions', 'postop_via_dicom'],
        'dicom_carm': ['SOP_CLASSES', 'shot_dataset', 'write_shot_dicom', 'simulated_shot_dataset', 'encode_dataset', 'field_windowed_values',
                       'orientation_codes'],
        'postop_ct': ['perturbed_implant', 'rigid_motion', 'synthesize_postop_ct', 'implant_fraction_volume', 'APPEARANCE_FAMILIES', 'appearance_kwargs'],
        'postop_scanner': ['ScannerModel', 'SCANNER_FAMILIES', 'scanner_family', 'scanner_motion', 'scanner_postop_ct'],
        'sample': ['SAMPLE_DIR', 'SAMPLE_SIDE', 'SAMPLE_PROFILE', 'sample_plan', 'build_sample_data', 'demo_pin'],
    },
)
