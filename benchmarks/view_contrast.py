"""Virtual views of the real CT: bone contrast of the display chain, plain against the C-arm look.

Builds the named views of the real-CT fixture plan (``tests/data/real_ct_plan.json``,
Siemens Cios Fusion profile) twice: with the plain chain (``DisplaySettings()``: a
window from the 1st to the 99.5th percentile of the whole image, what the view library
used before) and with :data:`or_assist.render.display.CARM_DISPLAY` (range compression,
window metered on the central 60 %, the default now). For each view it measures, away
from the implants' metal:

* local bone contrast: in 8 x 8 blocks of the image, the mean grey of the quarter of
  pixels with the least bone on their ray minus that of the quarter with the most (bone
  = voxels above 250 HU, from a DRR of the bone alone), averaged over the blocks: how
  much darker bone shows than the soft tissue beside it, in grey levels (0-255);
* the standard deviation and the 5th-95th percentile span of grey in the central 60 %.

With ``--png DIR`` it writes each view's printable PNG for both chains
(``DIR/before/*.png``, ``DIR/after/*.png``).

Run from the repository root::

    python benchmarks/view_contrast.py [--size-px 256] [--png /tmp/views]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from or_assist.core.carm_profiles import load_profile  # noqa: E402
from or_assist.core.plan import load_plan, load_plan_ct  # noqa: E402
from or_assist.render.display import DisplaySettings, metering_mask  # noqa: E402
from or_assist.render.drr import AttenuationVolume, DRRRenderer  # noqa: E402
from or_assist.render.implants import default_mu_per_mm, metal_line_integrals  # noqa: E402
from or_assist.render.views.build import build_view_library  # noqa: E402
from or_assist.render.view_quality import local_bone_contrast  # noqa: E402

REAL_PLAN = REPO_ROOT / "tests" / "data" / "real_ct_plan.json"
BONE_HU = 250.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-px", type=int, default=256, help="largest side of the views (default 256)")
    ap.add_argument("--png", type=Path, default=None, help="write the views' PNGs to DIR/before and DIR/after")
    args = ap.parse_args(argv)

    plan = load_plan(REAL_PLAN)
    ct, _ = load_plan_ct(plan)
    geometry = load_profile("siemens_cios_fusion").geometry
    bone = DRRRenderer(AttenuationVolume.from_ct(ct, mask=ct.hu > BONE_HU))
    mus = [default_mu_per_mm(imp, 60.0) for imp in plan.implants]
    print(f"real-CT fixture plan, {len(plan.implants)} implants, Siemens Cios Fusion, views <= {args.size_px} px\n")
    print(f"{'chain':24s} {'bone contrast (grey levels)':>28s} {'centre std':>11s} {'centre p5-p95':>14s} {'build':>7s}")
    for label, settings, sub in (("plain (before)", DisplaySettings(), "before"), ("CARM_DISPLAY (after)", None, "after")):
        t0 = time.perf_counter()
        lib = build_view_library(plan, geometry, ct=ct, size_px=args.size_px, neighbourhood_deg=None,
                                 display_settings=settings)
        seconds = time.perf_counter() - t0
        rows = []
        for i, e in enumerate(lib.entries):
            img = lib.display[i]
            valid = metal_line_integrals(e.pose, geometry, plan.implants, mus, downsample=e.downsample) < 0.05
            centre = metering_mask(img.shape, 0.6, valid)
            rows.append((local_bone_contrast(img, bone.render(e.pose, geometry, downsample=e.downsample), valid),
                         img[centre].std(), np.percentile(img[centre], 95) - np.percentile(img[centre], 5)))
        a = np.array(rows)
        print(f"{label:24s} {f'mean {a[:, 0].mean():.1f}, min {a[:, 0].min():.1f}':>28s} {a[:, 1].mean():11.1f} "
              f"{f'{a[:, 2].mean():.0f} (min {a[:, 2].min():.0f})':>14s} {seconds:6.1f}s")
        if args.png is not None:
            import cv2

            from or_assist.render.views.png import render_view_png

            out = args.png / sub
            out.mkdir(parents=True, exist_ok=True)
            for i, e in enumerate(lib.entries):
                cv2.imwrite(str(out / f"{e.name.replace(' ', '_')}.png"), render_view_png(lib, i))
    if args.png is not None:
        print(f"\nPNGs in {args.png / 'before'} and {args.png / 'after'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
