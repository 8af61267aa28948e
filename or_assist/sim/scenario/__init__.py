"""The simulated C-arm: scripted scenarios played as a frame source.

Modules::

    demo_case  The demo case of the OR display: the built-in sample pelvis played by the shot simulator.
    model      Scripted C-arm sessions: the steps and their JSON file.
    player     The shot simulator as a video source: a scripted C-arm session, frame by frame.
    scripts    Built-in C-arm sessions: the OR demo and long random sessions for benchmarks.
    spec       The simulated C-arm as a kind of video source: open_source("sim:...").
    timeline   The frame-by-frame ground truth of a scenario, without rendering.

Names are exported lazily (``lazy_loader``, as in scikit-image): importing this package
imports no submodule, ``from or_assist.sim.scenario import name`` imports only the one that
defines ``name``.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=['demo_case', 'model', 'player', 'scripts', 'spec', 'timeline'],
    submod_attrs={
        'demo_case': ['DEMO_FRAME_SIZE_PX', 'DEMO_TILT_OFFSET_DEG', 'demo_app_scenario', 'open_demo_case'],
        'model': ['SCENARIO_SCHEMA', 'MODES', 'OVERLAY_POSITIONS', 'PinState', 'ScenarioStep', 'VideoSettings', 'Scenario', 'load_scenario', 'save_scenario', 'scenario_from_dict'],
        'player': ['ScenarioSource'],
        'spec': ['scenario_source_from_spec', 'load_sample_case'],
        'scripts': ['demo_scenario', 'session_scenario'],
        'timeline': ['FrameTruth', 'HeldImage', 'scenario_timeline', 'held_images'],
    },
)
