"""Virtual fluoroscopy: DRRs, implants in images, the display model, the view library.

Modules::

    views/      The virtual view library of a plan: building it, its data model, npz/PNG files.
    display     Display model: DRR line integrals -> an image that looks like the C-arm's video.
    drr         Digitally reconstructed radiographs (DRRs): perspective ray casting through a CT.
    implants    Implants and guide pins in virtual images: metal attenuation.
    outline     Implants and guide pins as seen in an image: their meshes and exact outlines.
    plan_live   Live virtual fluoroscopy for the planner: lateral, inlet, outlet and axis views of a plan.
    plan_sheet  The printable plan sheet: the virtual views and the implant table the surgeon takes to the OR.
    view_quality  How clearly a virtual view shows bone: the measure behind the C-arm look of real-CT views.
    pose_cache  A DRR renderer that remembers its last renders, for many exposures of one C-arm position.

Names are exported lazily (``lazy_loader``, as in scikit-image): importing this package
imports no submodule, ``from or_assist.render import name`` imports only the one that
defines ``name``.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=['views', 'display', 'drr', 'implants', 'outline', 'plan_live', 'plan_sheet', 'pose_cache', 'view_quality'],
    submod_attrs={
        'view_quality': ['local_bone_contrast'],
        '_drr_kernels': ['render_rays', 'row_stride', 'reference_line_integrals', 'clip_ray_to_box', 'warm_up'],
        'display': ['CARM_DISPLAY', 'DISPLAY_MODES', 'OUTPUT_TYPES', 'DisplaySettings', 'auto_window',
                    'compress_range', 'metering_mask', 'to_display'],
        'drr': ['AttenuationVolume', 'DRRRenderer', 'RenderStats', 'render_drr', 'render_reference', 'as_pose', 'effective_geometry'],
        'implants': ['METALS', 'metal_mu_per_mm', 'default_mu_per_mm', 'convex_halfspaces', 'burn_implants', 'metal_line_integrals'],
        'outline': ['object_mesh', 'ImplantOutline', 'implant_outline', 'silhouette_px'],
        'plan_live': ['LIVE_VIEW_KINDS', 'DEFAULT_PROFILE', 'LiveView', 'LiveViews', 'view_tilts_deg'],
        'pose_cache': ['PoseCachedRenderer'],
        'plan_sheet': ['SHEET_VIEW_KINDS', 'implant_rows', 'render_plan_sheet_png', 'plan_sheet_html', 'write_plan_sheet'],
    },
)
