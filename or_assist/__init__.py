"""or_assist: intraoperative comparison assistant for sacroiliac joint fusion.

The package follows the data flow of the app (see ``docs/architecture.md``)::

    core/      data types and maths: geometry, CT, plan
    render/    DRRs and virtual view library
    video/     frame sources, preprocessing, new-shot detection
    register/  2D/3D registration
    guidance/  pin detection, deviation, cues, overlays
    session/   case log and report
    postop/    post-operative CT evaluation
    app/       the Qt OR display (the only package that imports Qt)
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
