"""or_assist: intraoperative comparison assistant for sacroiliac joint fusion.

The subpackages are the stages of the data flow (see ``docs/architecture.md``)::

    core/         geometry, C-arm model, CT I/O, plan model, validation, vocabularies
    planning/     plan editing, measurements, checks, proposals, reslicing
    render/       DRRs, implants in images, display model, virtual view library
    video/        sources, capture, frame preprocessing, new-shot detection (imports only core)
    calibration/  C-arm and grabber calibration from bead phantoms (imports only core)
    register/     2-D/3-D registration of a shot to the CT
    guidance/     guide-pin detection, deviation, cues, overlay drawing
    live/         the OR pipeline: shot -> registration -> guidance -> case log
    session/      case log (SQLite + images), report, export
    postop/       post-operative CT evaluation and cohorts
    sim/          phantom, sample case, simulated C-arm, shot simulator (demo, tests, benchmarks)
    app/          the Qt OR display and planner (the only package that imports Qt)
    cli/          the ``or-assist`` command, one module per command group

Each package's ``__init__`` lists its modules and exports their public names lazily.
"""

import lazy_loader as _lazy

__version__ = "0.1.0"

__getattr__, __dir__, _submodules = _lazy.attach(
    __name__,
    submodules=["core", "planning", "render", "video", "calibration", "register", "guidance", "live",
                "session", "postop", "sim", "app", "cli", "errors"],
)
__all__ = ["__version__", *_submodules]
