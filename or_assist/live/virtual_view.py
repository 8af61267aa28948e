"""The OR display's virtual view: the planned view as a virtual fluoroscopy with the plan's outlines.

From the view library when it holds the view (its image and exact pose), otherwise
rendered from the CT in the C-arm look (:data:`~or_assist.render.display.CARM_DISPLAY`)
over the square of the detector around the piercing point.
"""

from __future__ import annotations

import math

import numpy as np

from or_assist.core.geometry import CArmGeometry
from or_assist.core.plan import Plan
from or_assist.core.pose import Pose
from or_assist.errors import InputError
from or_assist.guidance.overlay import draw_overlay
from or_assist.render.display import to_display
from or_assist.render.drr import DRRRenderer
from or_assist.render.views.model import ViewLibrary

__all__ = ["planned_view_image"]


def planned_view_image(plan: Plan, geometry: CArmGeometry, implant_id: str, view: str, pose: Pose, *,
                       library: ViewLibrary | None = None, renderer: DRRRenderer | None = None,
                       size_px: int = 384) -> np.ndarray:
    """The planned view ``implant_id`` / ``view`` with the plan's outlines, the active implant highlighted.

    Parameters
    ----------
    plan : Plan
    geometry : CArmGeometry
        The delivered frame's geometry (its square around the piercing point is rendered).
    implant_id, view : str
        The planned view (the library's entry ``'<implant_id> <view>'`` when it has one).
    pose : Pose
        The planned view's pose, used when the library does not hold the view.
    library : ViewLibrary, optional
    renderer : DRRRenderer, optional
        Needed when the library does not hold the view.
    size_px : int
        The rendered image's side is at most about this (the geometry is downsampled by an integer factor).

    Returns
    -------
    (N, N, 3) uint8 ndarray, BGR
    """
    image, geom = None, None
    if library is not None:
        try:
            index = library.index(f"{implant_id} {view}")
            image, geom, pose = library.display[index], library.geometry_of(index), library.entries[index].pose
        except InputError:
            image = None
    if image is None:
        if renderer is None:
            raise InputError("no view library and no renderer to draw the virtual view", "library")
        w, h = geometry.image_size_px
        side = min(w, h)  # the square around the piercing point: the detector's field, not the frame
        u0, v0 = geometry.principal_point_px
        cu = int(np.clip(round(u0 - side / 2), 0, w - side))
        cv = int(np.clip(round(v0 - side / 2), 0, h - side))
        geom = geometry.cropped(cu, cv, side, side)
        factor = max(1, int(math.ceil(side / size_px)))
        geom = geom.downsampled(factor) if factor > 1 else geom
        image = to_display(renderer.render(pose, geom))
    return draw_overlay(np.ascontiguousarray(image), True, pose=pose, geometry=geom, implants=plan.implants,
                        active_id=implant_id)
