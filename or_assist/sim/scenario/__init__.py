"""The simulated C-arm: scripted scenarios played as a frame source.

Modules::

    demo_case  The demo case of the OR display: the built-in sample pelvis played by the shot simulator.
    model    Scripted C-arm sessions: the steps, their JSON file and the frame-by-frame ground truth.
    player   The shot simulator as a video source: a scripted C-arm session, frame by frame.
    scripts  Built-in C-arm sessions: the OR demo and long random sessions for benchmarks.

Names are exported lazily (``lazy_loader``, as in scikit-image): importing this package
imports no submodule, ``from or_assist.sim.scenario import name`` imports only the one that
defines ``name``.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=['demo_case', 'model', 'player', 'scripts'],
    submod_attrs={
        'demo_case': ['DEMO_FRAME_SIZE_PX', 'DEMO_TILT_OFFSET_DEG', 'demo_app_scenario', 'open_demo_case'],
        'model': ['SCENARIO_SCHEMA', 'MODES', 'OVERLAY_POSITIONS', 'PinState', 'ScenarioStep', 'VideoSettings', 'Scenario', 'FrameTruth', 'HeldImage', 'scenario_timeline', 'held_images', 'load_scenario', 'save_scenario', 'scenario_from_dict'],
        'player': ['PoseCachedRenderer', 'ScenarioSource', 'scenario_source_from_spec', 'load_sample_case', 'SPEC_PREFIX'],
        'scripts': ['demo_scenario', 'session_scenario'],
    },
)
