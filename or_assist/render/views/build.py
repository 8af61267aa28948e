"""The virtual view library: a plan's named C-arm views, rendered with its implants.

For a plan and a C-arm geometry the library holds, for every implant-centred view of the
plan (its ``views``, or :func:`~or_assist.core.plan.default_views`), completed so that each
implant has a lateral, inlet, outlet and axis view (poses from
:func:`or_assist.core.view_poses.plan_view_pose`):

* the pose (``T_source_from_patient``), its clinical C-arm angles and isocentre;
* the line integrals of the CT (:mod:`or_assist.render.drr`) plus the exact metal of
  every planned implant (:func:`or_assist.render.implants.metal_line_integrals`), and
  the display image (:func:`or_assist.render.display.to_display`, bone dark);
* the projected outline, entry and apex of every implant (for overlays and printing);

plus, optionally, a *neighbourhood* per named view: the same isocentre seen from a small
grid of nearby C-arm angles (``orbital + a``, ``tilt + b`` for offsets ``a, b`` in
``neighbourhood_deg``), rendered smaller, from which registration can pick a starting
pose (:func:`nearest_views`).

Files (:mod:`or_assist.render.views.io`): one ``views.npz`` per plan with the metadata
(poses, geometry, plan SHA-256, renderer and display settings) and PNGs with the planned
outlines for printing. The library remembers the plan's SHA-256 and the geometry, so a
library that does not belong to a plan or a C-arm is refused on loading.

Examples
--------
>>> lib = build_view_library(load_plan("plan.json"), load_geometry("g.json"))  # doctest: +SKIP
>>> match = nearest_views(lib, registered_pose, k=1)[0]                          # doctest: +SKIP
>>> lib.line_integrals[match.index], lib.geometry_of(match.index)                # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable, Sequence

import numpy as np

from or_assist.core.carm import carm_angles_from_pose, patient_axes, pose_from_carm_angles
from or_assist.core.geometry import CArmGeometry
from or_assist.core.validate import check_choice
from or_assist.core.vocabulary import PATIENT_POSITIONS
from or_assist.errors import InputError
from or_assist.render.display import CARM_DISPLAY, DisplaySettings
from or_assist.render.views.model import (DEFAULT_NEIGHBOURHOOD_DEG, DEFAULT_NEIGHBOURHOOD_SIZE_PX,
                                          DEFAULT_SIZE_PX, LIBRARY_VIEW_KINDS, ViewEntry, ViewLibrary, check_neighbourhood_deg, downsample_for_size, neighbourhood_offsets)

__all__ = ["build_view_library"]

_MAX_TILT_DEG = 89.0                  # beyond this the clinical angles are degenerate
_FLOAT16_MAX = 65000.0

ProgressCallback = Callable[[int, int, str], None]


def _wrap_deg(angle_deg: float) -> float:
    """Angle in (-180, 180]."""
    a = math.fmod(angle_deg + 180.0, 360.0)
    a = a + 360.0 if a <= 0 else a
    return a - 180.0


# --------------------------------------------------------------------------- build


def _check_ct(plan, ct):
    from or_assist.core.plan import check_implants_in_ct, load_plan_ct

    if ct is None:
        return load_plan_ct(plan)[0]
    if not hasattr(ct, "voxel_sha256"):
        raise InputError(f"expected a CTVolume, got {type(ct).__name__}", "ct")
    if plan.ct_sha256 is not None and ct.voxel_sha256() != plan.ct_sha256:
        raise InputError(f"is not the plan's CT: its voxel SHA-256 differs from the plan's field 'ct.sha256' "
                         f"({plan.ct_sha256[:12]}...)", "ct")
    check_implants_in_ct(plan, ct)
    return ct


def _view_specs(plan) -> list:
    """The plan's implant-centred views, completed so every implant has each kind of
    :data:`LIBRARY_VIEW_KINDS` (added views get the plan's landmark-derived tilts)."""
    from or_assist.core.plan import ViewSpec, default_views

    specs = [v for v in (plan.views or default_views(plan)) if v.implant is not None]
    have = {(v.implant, v.kind) for v in specs}
    for imp in plan.implants:
        specs += [ViewSpec(f"{imp.id} {kind}", kind, imp.id, None)
                  for kind in LIBRARY_VIEW_KINDS if (imp.id, kind) not in have]
    order = {imp.id: k for k, imp in enumerate(plan.implants)}
    return sorted(specs, key=lambda v: order[v.implant])  # stable: plan order within an implant


def _named_entries(plan, geometry, patient_position, axes, downsample) -> list[ViewEntry]:
    from or_assist.core.view_poses import plan_view_pose

    entries = []
    for spec in _view_specs(plan):
        pose = plan_view_pose(plan, spec.implant, spec.kind, geometry=geometry, tilt_deg=spec.tilt_deg,
                              patient_position=patient_position)
        iso = pose.source_position_lps_mm + geometry.source_to_isocenter_mm * pose.beam_direction_lps
        entries.append(ViewEntry(spec.name, spec.implant, spec.kind, spec.name, (0.0, 0.0), pose,
                                 carm_angles_from_pose(pose, patient_position, axes), iso, downsample))
    names = [e.name for e in entries]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"view names must be unique, {', '.join(map(repr, dup))} repeats", "plan: views")
    return entries


def _neighbour_entries(parent: ViewEntry, offsets, geometry, patient_position, axes, downsample) -> list[ViewEntry]:
    out = []
    a = parent.angles
    for d_orbital, d_tilt in offsets:
        tilt = a.tilt_deg + d_tilt
        if abs(tilt) > _MAX_TILT_DEG:
            raise InputError(f"tilt offset {d_tilt:+g} deg takes view {parent.name!r} (tilt {a.tilt_deg:.1f} deg) "
                             f"beyond +-{_MAX_TILT_DEG:g} deg; use smaller offsets", "neighbourhood_deg")
        orbital = _wrap_deg(a.orbital_deg + d_orbital)
        pose = pose_from_carm_angles(orbital, tilt, parent.isocenter_lps_mm, geometry.source_to_isocenter_mm,
                                     patient_position, axes)
        name = f"{parent.name} [orbital {d_orbital:+g}, tilt {d_tilt:+g}]"
        out.append(ViewEntry(name, parent.implant_id, parent.kind, parent.name, (d_orbital, d_tilt), pose,
                             carm_angles_from_pose(pose, patient_position, axes), parent.isocenter_lps_mm,
                             downsample))
    return out


def build_view_library(plan, geometry: CArmGeometry, *, ct=None, size_px: int | None = None,
                       neighbourhood_deg: Sequence[float] | None = DEFAULT_NEIGHBOURHOOD_DEG,
                       neighbourhood_size_px: int = DEFAULT_NEIGHBOURHOOD_SIZE_PX,
                       implants_shown: bool = True, energy_kev: float = 60.0, step_mm: float | None = None,
                       neighbourhood_step_mm: float | None = None,
                       display_settings: DisplaySettings | None = None, patient_position: str = "prone",
                       progress: ProgressCallback | None = None) -> ViewLibrary:
    """Render a plan's virtual view library (module doc).

    Parameters
    ----------
    plan : Plan
        With at least one implant; its views (or :func:`default_views`) name the views,
        completed to a lateral, inlet, outlet and axis view per implant.
    geometry : CArmGeometry
        The C-arm (full detector); its source-to-isocentre distance places the views.
    ct : CTVolume, optional
        The plan's CT, if already loaded (checked against the plan's ``ct.sha256``);
        default :func:`or_assist.core.plan.load_plan_ct`.
    size_px : int, optional
        Largest side of the named views' images; the detector is binned by the smallest
        integer that fits (default 512).
    neighbourhood_deg : sequence of float or None
        Offsets of the neighbourhood grid (:func:`neighbourhood_offsets`); None: none.
    neighbourhood_size_px : int
        Largest side of the neighbourhood images (default 128).
    implants_shown : bool
        Add every planned implant's metal (titanium) to the line integrals.
    energy_kev : float
        Effective energy for HU -> attenuation and the metal.
    step_mm : float, optional
        DRR sampling step of the named views; default half the smallest voxel.
    neighbourhood_step_mm : float, optional
        DRR sampling step of the neighbourhood views; default the smallest voxel (their
        pixels are coarse; this halves their cost).
    display_settings : DisplaySettings, optional
        Default :data:`~or_assist.render.display.CARM_DISPLAY` (the C-arm look: range
        compression, window metered on the centre); the compression and an automatic
        window come from each image's anatomy, without the metal, which then shows
        black, as on a C-arm.
    patient_position : {'prone', 'supine'}
    progress : callable(done, total, name), optional
        Called before each view is rendered and once at the end (``done == total``).

    Returns
    -------
    ViewLibrary

    Raises
    ------
    InputError
        A bad argument, a plan without implants, a CT that is not the plan's, or a view
        that cannot be rendered (named in the message).
    """
    from or_assist import __version__
    from or_assist.core.plan import Plan, plan_to_dict
    from or_assist.render.display import to_display
    from or_assist.render.drr import AttenuationVolume, DRRRenderer
    from or_assist.render.implants import default_mu_per_mm, metal_line_integrals
    from or_assist.render.outline import implant_outline

    if not isinstance(plan, Plan):
        raise InputError(f"expected a Plan, got {type(plan).__name__}", "plan")
    if not isinstance(geometry, CArmGeometry):
        raise InputError(f"expected a CArmGeometry, got {type(geometry).__name__}", "geometry")
    if not plan.implants:
        raise InputError("has no implants: the view library shows each implant's views", plan.source or "plan")
    check_choice(patient_position, PATIENT_POSITIONS, "patient_position")
    if not isinstance(implants_shown, (bool, np.bool_)):
        raise InputError(f"must be True or False, got {implants_shown!r}", "implants_shown")
    if display_settings is None:
        display_settings = CARM_DISPLAY
    if not isinstance(display_settings, DisplaySettings) or display_settings.output != "uint8":
        raise InputError("must be DisplaySettings with output 'uint8'", "display_settings")
    if progress is not None and not callable(progress):
        raise InputError(f"must be callable(done, total, name) or None, got {progress!r}", "progress")
    ds = downsample_for_size(geometry, DEFAULT_SIZE_PX if size_px is None else size_px, "size_px")
    ds_nb = downsample_for_size(geometry, neighbourhood_size_px, "neighbourhood_size_px")
    offsets = neighbourhood_offsets(neighbourhood_deg)
    mus = [default_mu_per_mm(imp, energy_kev) for imp in plan.implants]

    axes = patient_axes(plan.landmarks)
    named = _named_entries(plan, geometry, patient_position, axes, ds)
    entries = list(named)
    for parent in named:
        entries += _neighbour_entries(parent, offsets, geometry, patient_position, axes, ds_nb)

    ct = _check_ct(plan, ct)
    renderer = DRRRenderer(AttenuationVolume.from_ct(ct, energy_kev))
    step = renderer.default_step_mm if step_mm is None else step_mm
    step_nb = 2.0 * renderer.default_step_mm if neighbourhood_step_mm is None else neighbourhood_step_mm
    line_integrals, display, done = [], [], []
    for k, entry in enumerate(entries):
        if progress is not None:
            progress(k, len(entries), entry.name)
        try:
            li = renderer.render(entry.pose, geometry, step_mm=step if entry.is_named else step_nb,
                                 downsample=entry.downsample)
            metal = None
            if implants_shown:
                metal = metal_line_integrals(entry.pose, geometry, plan.implants, mus, downsample=entry.downsample)
            outlines = ()
            if entry.is_named:
                g = geometry.downsampled(entry.downsample) if entry.downsample > 1 else geometry
                outlines = tuple(implant_outline(imp, entry.pose, g) for imp in plan.implants)
        except InputError as exc:
            raise InputError(f"view {entry.name!r} cannot be rendered: {exc}", plan.source or "plan") from None
        display.append(to_display(li, display_settings, metal=metal))
        if metal is not None:
            li += metal
        line_integrals.append(np.clip(li, -_FLOAT16_MAX, _FLOAT16_MAX).astype(np.float16))
        done.append(dataclasses.replace(entry, outlines=outlines) if outlines else entry)
    if progress is not None:
        progress(len(entries), len(entries), "done")

    renderer_doc = {
        "energy_kev": float(energy_kev), "step_mm": float(step),
        "neighbourhood_step_mm": float(step_nb), "implants_shown": bool(implants_shown),
        "metal": "titanium", "metal_mu_per_mm": {imp.id: mu for imp, mu in zip(plan.implants, mus)},
        "downsample": ds, "neighbourhood_downsample": ds_nb, "renderer": "or_assist.render.drr",
        "built_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return ViewLibrary(done, line_integrals, display, geometry, plan.sha256(), plan.source,
                       plan_to_dict(plan)["implants"], renderer_doc, display_settings, patient_position,
                       np.stack(axes), check_neighbourhood_deg(neighbourhood_deg), __version__)
