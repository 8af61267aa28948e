"""Post-operative CT evaluation: placed vs planned implants, one case or a cohort.

Modules, in pipeline order:

``register3d``
    rigid 3D/3D registration of the post-op CT to the pre-op (planning) CT.
``segment``
    metal objects, their principal axes and extents; catalogue-based implant fit.
``prism_fit``
    sub-voxel triangular-prism fit of one implant to its partial-volume metal.
``match``
    planned <-> found matching, far metal (prostheses) ignored, extra implants reported.
``evaluate``
    one case: apex and entry deviation, angle, breach check; ``or-assist evaluate``.
``cohort``
    many cases: mean +- SD table, learning curve plot; ``or-assist evaluate --cohort``.
``synthetic``
    synthetic post-op CTs with known ground truth (tests, benchmarks).

Submodules are not imported here (SimpleITK is loaded on use).
"""

__all__ = ["register3d", "segment", "prism_fit", "match", "evaluate", "cohort", "synthetic"]
