"""Simulation: the phantom pelvis, the sample case, the simulated C-arm, the realistic
shot simulator, synthetic post-op CTs. Feeds the demo, tests and benchmarks only:
nothing else in or_assist imports it.

Modules::

    phantom/   or_assist.sim.phantom.
    scenario/  or_assist.sim.scenario.
    shots/     or_assist.sim.shots.
    postop_ct  Synthetic post-operative CTs with known ground truth, for tests and benchmarks.
    sample     The built-in sample case: the synthetic pelvis CT, its plan and a C-arm geometry.

Names are exported lazily (``lazy_loader``, as in scikit-image): importing this package
imports no submodule, ``from or_assist.sim import name`` imports only the one that
defines ``name``.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=['phantom', 'scenario', 'shots', 'postop_ct', 'sample'],
    submod_attrs={
        'postop_ct': ['perturbed_implant', 'rigid_motion', 'synthesize_postop_ct', 'implant_fraction_volume', 'pose_to_sitk'],
        'sample': ['SAMPLE_DIR', 'SAMPLE_SIDE', 'SAMPLE_PROFILE', 'sample_plan', 'build_sample_data'],
    },
)
