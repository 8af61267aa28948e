"""Live virtual fluoroscopy for the planner: lateral, inlet, outlet and axis views of a plan.

:class:`LiveViews` renders one named view of the active implant (DRR of the CT plus the
exact metal of every planned implant, shown as the C-arm shows it, with
:data:`or_assist.render.display.CARM_DISPLAY`: range compression and a window from the
anatomy, so metal shows black; with the projected implant outlines) at two resolutions:
*reduced* (the detector binned to about ``reduced_size_px``, e.g. 128 px: a few
milliseconds, rendered on every edit) and *full* (``full_size_px``, when the planner is
idle). Poses come from :func:`or_assist.core.view_poses.plan_view_pose`; the inlet and
outlet tilts from an explicit value, or derived from the plan's landmarks
(:func:`or_assist.core.carm.derive_view_tilts_deg`), or the defaults 25 and 42 deg.

Without an implant, the lateral, inlet and outlet views are centred on the sacral
promontory (or the CT centre); the axis view needs an implant.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from or_assist.core.carm import (DEFAULT_INLET_TILT_DEG, DEFAULT_OUTLET_TILT_DEG, derive_view_tilts_deg,
                                 patient_axes, pose_from_carm_angles, sijf_view_pose)
from or_assist.core.geometry import CArmGeometry
from or_assist.core.pose import Pose
from or_assist.core.validate import check_choice
from or_assist.core.vocabulary import IMPLANT_VIEW_KINDS
from or_assist.errors import InputError
from or_assist.render.display import CARM_DISPLAY, to_display
from or_assist.render.drr import AttenuationVolume, DRRRenderer
from or_assist.render.implants import default_mu_per_mm, metal_line_integrals
from or_assist.render.outline import ImplantOutline, implant_outline
from or_assist.render.views.model import downsample_for_size

__all__ = ["LIVE_VIEW_KINDS", "DEFAULT_PROFILE", "LiveView", "LiveViews", "view_tilts_deg"]

LIVE_VIEW_KINDS = IMPLANT_VIEW_KINDS
DEFAULT_PROFILE = "siemens_cios_fusion"


@dataclass(frozen=True, eq=False)
class LiveView:
    """One rendered live view.

    Attributes
    ----------
    kind : str
    implant_id : str or None
    image : (H, W) uint8 ndarray
        Bone and metal dark.
    outlines : tuple of ImplantOutline
        In this image's pixels.
    pose : Pose
    geometry : CArmGeometry
        The (binned) geometry of ``image``.
    tilt_deg : float or None
        Inlet/outlet tilt used.
    seconds : float
        Render time (DRR + metal + display).
    """

    kind: str
    implant_id: str | None
    image: np.ndarray
    outlines: tuple[ImplantOutline, ...]
    pose: Pose
    geometry: CArmGeometry
    tilt_deg: float | None
    seconds: float


def view_tilts_deg(plan, inlet_deg: float | None = None, outlet_deg: float | None = None,
                   derive: bool = False) -> tuple[float, float, str]:
    """The inlet and outlet tilts to use, and where they come from.

    Parameters
    ----------
    plan : Plan
    inlet_deg, outlet_deg : float, optional
        Explicit tilts (the planner's spin boxes); default 25 and 42 deg.
    derive : bool
        Derive each from the plan's landmarks where possible (else the explicit value).

    Returns
    -------
    inlet_deg, outlet_deg : float
    source : str
        e.g. ``"inlet derived from landmarks, outlet set"``.
    """
    inlet = DEFAULT_INLET_TILT_DEG if inlet_deg is None else float(inlet_deg)
    outlet = DEFAULT_OUTLET_TILT_DEG if outlet_deg is None else float(outlet_deg)
    src_in = src_out = "set"
    if derive:
        d_in, d_out = derive_view_tilts_deg(plan.landmarks)
        if d_in is not None:
            inlet, src_in = d_in, "derived from landmarks"
        else:
            src_in = "set (not derivable: needs sacral_promontory and s2_anterior_body)"
        if d_out is not None:
            outlet, src_out = d_out, "derived from landmarks"
        else:
            src_out = "set (not derivable: needs sacral_promontory and s1_endplate_posterior)"
    return inlet, outlet, f"inlet {src_in}, outlet {src_out}"


class LiveViews:
    """Renders a plan's live virtual views on one CT (module doc).

    Parameters
    ----------
    ct : CTVolume
    geometry : CArmGeometry, optional
        The C-arm; default the ``siemens_cios_fusion`` profile at 512 px.
    reduced_size_px, full_size_px : int
        Largest image side of the reduced and full renders.
    energy_kev : float
    patient_position : {'prone', 'supine'}
    reduced_voxel_mm : float
        Reduced renders use a copy of the CT resampled to at least this voxel size
        (anti-aliased), so their cost does not grow with a finer CT.
    """

    def __init__(self, ct, geometry: CArmGeometry | None = None, *, reduced_size_px: int = 128,
                 full_size_px: int = 512, energy_kev: float = 60.0, patient_position: str = "prone",
                 reduced_voxel_mm: float = 3.0):
        if geometry is None:
            from or_assist.core.carm_profiles import load_profile

            geometry = load_profile(DEFAULT_PROFILE).geometry_at(512)
        if not isinstance(geometry, CArmGeometry):
            raise InputError(f"expected a CArmGeometry, got {type(geometry).__name__}", "geometry")
        self.ct = ct
        self.geometry = geometry
        self.energy_kev = float(energy_kev)
        self.patient_position = patient_position
        self.renderer = DRRRenderer(AttenuationVolume.from_ct(ct, energy_kev))
        self.reduced_renderer = self.renderer
        if float(np.min(ct.spacing_mm)) < 0.8 * reduced_voxel_mm:     # a coarser copy for the fast renders
            from or_assist.core.ct.load import resample_ct

            coarse = resample_ct(ct, np.maximum(ct.spacing_mm, reduced_voxel_mm))
            self.reduced_renderer = DRRRenderer(AttenuationVolume.from_ct(coarse, energy_kev))
        self.ds_reduced = downsample_for_size(geometry, reduced_size_px, "reduced_size_px")
        self.ds_full = downsample_for_size(geometry, full_size_px, "full_size_px")
        c = ct.corners_lps_mm()
        self._ct_centre = 0.5 * (c.min(axis=0) + c.max(axis=0))

    def set_geometry(self, geometry: CArmGeometry, reduced_size_px: int = 128, full_size_px: int = 512) -> None:
        """Use another C-arm (e.g. a profile chosen for export)."""
        self.geometry = geometry
        self.ds_reduced = downsample_for_size(geometry, reduced_size_px, "reduced_size_px")
        self.ds_full = downsample_for_size(geometry, full_size_px, "full_size_px")

    def _centre(self, plan) -> np.ndarray:
        for lm in plan.landmarks:
            if lm.kind == "sacral_promontory":
                return lm.position_lps_mm
        return self._ct_centre

    def pose(self, plan, implant_id: str | None, kind: str, tilt_deg: float | None = None) -> Pose:
        """The pose of a view (module doc); ``tilt_deg`` for inlet and outlet."""
        check_choice(kind, LIVE_VIEW_KINDS, "kind")
        s2i = self.geometry.source_to_isocenter_mm
        if implant_id is not None:
            imp = plan.implant(implant_id)
            return sijf_view_pose(kind, imp.entry_lps_mm, imp.apex_lps_mm, imp.side, s2i, tilt_deg=tilt_deg,
                                  patient_position=self.patient_position, landmarks=plan.landmarks)
        if kind == "axis":
            raise InputError("the axis view needs an implant: add or select one", "view")
        axes = patient_axes(plan.landmarks)
        iso = self._centre(plan)
        if kind == "lateral":
            return pose_from_carm_angles(90.0, 0.0, iso, s2i, self.patient_position, axes)
        t = (DEFAULT_INLET_TILT_DEG if kind == "inlet" else DEFAULT_OUTLET_TILT_DEG) if tilt_deg is None \
            else float(tilt_deg)
        # inlet: detector towards the feet (CAUD); outlet: towards the head (CRAN)
        return pose_from_carm_angles(0.0, -t if kind == "inlet" else t, iso, s2i, self.patient_position, axes)

    def render(self, plan, implant_id: str | None, kind: str, *, reduced: bool = True,
               tilt_deg: float | None = None, step_mm: float | None = None) -> LiveView:
        """Render one view with the plan's implants.

        Parameters
        ----------
        plan : Plan
        implant_id : str or None
            The active implant (centres the view); None for a whole-pelvis view.
        kind : {'lateral', 'inlet', 'outlet', 'axis'}
        reduced : bool
            Reduced (fast) or full resolution.
        tilt_deg : float, optional
            Inlet/outlet tilt (see :func:`view_tilts_deg`).
        step_mm : float, optional
            DRR step; default half the smallest voxel (full) or one voxel of the coarse
            copy (reduced).

        Returns
        -------
        LiveView
        """
        started = time.perf_counter()
        ds = self.ds_reduced if reduced else self.ds_full
        tilt = tilt_deg if kind in ("inlet", "outlet") else None
        pose = self.pose(plan, implant_id, kind, tilt)
        renderer = self.reduced_renderer if reduced else self.renderer
        step = step_mm if step_mm is not None else renderer.default_step_mm * (2.0 if reduced else 1.0)
        li = renderer.render(pose, self.geometry, step_mm=step, downsample=ds)
        g = self.geometry.downsampled(ds) if ds > 1 else self.geometry
        outlines = []
        metal = None
        if plan.implants:
            mus = [default_mu_per_mm(imp, self.energy_kev) for imp in plan.implants]
            metal = metal_line_integrals(pose, self.geometry, plan.implants, mus, downsample=ds)
            for imp in plan.implants:
                try:
                    outlines.append(implant_outline(imp, pose, g))
                except InputError:          # behind the source: not visible in this view
                    continue
        image = to_display(li, CARM_DISPLAY, metal=metal)   # the C-arm look; metal black
        return LiveView(kind, implant_id, image, tuple(outlines), pose, g, tilt,
                        time.perf_counter() - started)

    def render_all(self, plan, implant_id: str | None, *, reduced: bool = True, inlet_deg: float | None = None,
                   outlet_deg: float | None = None) -> dict[str, LiveView]:
        """Every live view kind (the axis view only with an implant)."""
        out = {}
        for kind in LIVE_VIEW_KINDS:
            if kind == "axis" and implant_id is None:
                continue
            tilt = inlet_deg if kind == "inlet" else outlet_deg if kind == "outlet" else None
            out[kind] = self.render(plan, implant_id, kind, reduced=reduced, tilt_deg=tilt)
        return out

