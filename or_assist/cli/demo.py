"""``or-assist demo``: the workflow so far on the built-in sample pelvis.

Generates the sample case (phantom CT, plan, C-arm geometry), checks the plan, builds its
virtual view library with printable PNGs, and simulates the C-arm shots a radiographer
would take for the first implant (lateral, inlet, outlet) with a guide pin that deviates
from the plan, as a frame grabber would deliver them. Finally it writes one overview
image with the virtual views above the simulated shots. No hardware, no downloads.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from or_assist.core.outputs import write_image
from or_assist.core.vocabulary import SIJF_VIEWS
from or_assist.sim.sample import demo_pin

__all__ = ["run_demo"]

DEMO_VIEWS = SIJF_VIEWS


def run_demo(out_dir: str | os.PathLike | None = None, log=print) -> int:
    """Run the demo; returns 0 on success (the exit status of ``or-assist demo``)."""
    import cv2

    from or_assist.core.geometry import load_geometry
    from or_assist.core.plan import load_plan
    from or_assist.cli.plan import format_plan_check, format_view_files
    from or_assist.planning.checks import check_plan_file
    from or_assist.core.view_poses import plan_view_pose
    from or_assist.render.drr import AttenuationVolume, DRRRenderer
    from or_assist.sim.shots.simulate import simulate_shot
    from or_assist.sim.shots.settings import ShotSettings
    from or_assist.render.views.io import build_view_files
    from or_assist.sim.sample import SAMPLE_DIR, build_sample_data

    t0 = time.perf_counter()
    out = Path(out_dir) if out_dir is not None else SAMPLE_DIR / "demo"
    out.mkdir(parents=True, exist_ok=True)
    log("or_assist demo: built-in sample pelvis (synthetic CT), Siemens Cios Fusion profile\n")
    paths = build_sample_data()
    for key, path in paths.items():
        log(f"  {key:9s} {path}")
    log("\nPlan checks (or-assist plan-check):")
    report = check_plan_file(paths["plan"])
    code = report.exit_code
    log(format_plan_check(report))
    if code != 0:
        log("the sample plan failed its checks: this is a bug, please report it")
        return code
    log("\nVirtual view library (or-assist views):")
    result = build_view_files(paths["plan"], paths["geometry"], out / "views", neighbourhood_deg=())
    log("  " + format_view_files(result))

    plan = load_plan(paths["plan"])
    geometry = load_geometry(paths["geometry"])
    implant = plan.implants[0]
    pin = demo_pin(implant)
    from or_assist.core.ct.load import load_ct

    renderer = DRRRenderer(AttenuationVolume.from_ct(load_ct(paths["ct"])))
    log(f"\nSimulated C-arm shots of implant {implant.id} with a guide pin 3 mm cranial and 4 deg off the plan:")
    tiles_virtual, tiles_shot = [], []
    for kind in DEMO_VIEWS:
        pose = plan_view_pose(plan, implant.id, kind, geometry=geometry)
        shot = simulate_shot(renderer, pose, geometry, pin=pin,
                             settings=ShotSettings(frame_size_px=(1920, 1080), seed=7))
        path = out / f"shot_{implant.id}_{kind}.png"
        write_image(path, shot.frame, what="the simulated shot")
        log(f"  {path}")
        png = out / "views" / "png" / f"{implant.id}_{kind}.png"
        virtual = cv2.imread(str(png), cv2.IMREAD_COLOR)
        tiles_virtual.append(_tile(virtual, f"virtual {kind}"))
        tiles_shot.append(_tile(cv2.cvtColor(shot.frame, cv2.COLOR_GRAY2BGR), f"simulated shot, {kind}"))
    overview = np.vstack([np.hstack(tiles_virtual), np.hstack(tiles_shot)])
    write_image(out / "demo_overview.png", overview, what="the overview")
    log(f"\nOverview (virtual views above, simulated shots below): {out / 'demo_overview.png'}")
    log(f"Done in {time.perf_counter() - t0:.1f} s. The live OR display arrives with `or-assist run`.")
    return 0


def _tile(image: np.ndarray, title: str, size_px: int = 480) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    scale = size_px / max(h, w)
    small = cv2.resize(image, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
    tile = np.zeros((size_px + 40, size_px, 3), np.uint8)
    y0 = (size_px - small.shape[0]) // 2
    x0 = (size_px - small.shape[1]) // 2
    tile[40 + y0:40 + y0 + small.shape[0], x0:x0 + small.shape[1]] = small
    cv2.putText(tile, title, (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2, cv2.LINE_AA)
    return tile
