"""Our CMA-ES (``register.optimize.cma_es``) against the reference one (pycma, ``pycma_es``).

Issue 18: the registration's global stages run a home-made CMA-ES; this measures it side
by side with pycma's ``CMAEvolutionStrategy`` (behind the same contract,
:func:`or_assist.register.optimize_pycma.pycma_es`) in two parts:

1. **Test functions** (6 parameters, as a registration has): evaluations until the best
   value is below a target, per function, over ``--fn-seeds`` seeds, both optimisers from
   the same start with the same initial spread and population; no early stop
   (``tol_fun=0``), a budget of ``--fn-budget`` evaluations.
2. **Registration**: shots of the appearance-family protocol of
   ``benchmarks/registration.py`` (real 3 mm CT, views lateral, inlet, outlet and AP,
   ``--families``, by default the HELD-OUT ones, ``--per-cell`` shots each, ``--seed``
   other than the calibration seed 2024 and the diagnosis seed 7). Each shot is simulated
   once and registered from the same start by the pipeline's default stages and by the
   same stages with ``optimizer='pycma'`` in the two CMA-ES stages, the order alternating
   from shot to shot (interleaved, so machine load falls on both alike). Reported: within
   2 mm (mTRE over the plan's targets), median mTRE, false confidence (registered while
   mTRE >= 2 mm), registered, wall time per shot (median, 95th percentile) and DRRs.
   Without the time budget (``time_budget_s=None``): on a loaded machine the budget
   would stop either by chance.

Nothing here is tuned: pycma runs with its defaults (population, weights, learning
rates) and the pipeline's spreads, budgets, bounds and seeds. pycma must be importable
(``pip install cma``, or ``PYTHONPATH=/path/to/a/target``).

Run from the repository root::

    python benchmarks/library_libcma.py                      # both parts (some minutes on 2 cores)
    python benchmarks/library_libcma.py --skip-registration  # test functions only (seconds)
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

from or_assist.register.optimize import cma_es  # noqa: E402
from or_assist.register.optimize_pycma import pycma_es  # noqa: E402

N_DIM = 6
OPTIMISERS = {"ours": cma_es, "pycma": pycma_es}


def _rotation(n: int, seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
    return q * np.sign(np.diag(r))


_R = _rotation(N_DIM, 123)


def sphere(x):
    return float(np.sum(x ** 2))


def ellipsoid(x):  # axis-parallel, condition 1e4 (degrees against millimetres, squared)
    return float(np.sum(10 ** (4 * np.arange(N_DIM) / (N_DIM - 1)) * x ** 2))


def rotated_ellipsoid(x):  # coupled parameters (depth against tilt)
    return ellipsoid(_R @ x)


def rosenbrock(x):
    return float(np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))


def rastrigin(x):  # many local optima
    return float(10 * N_DIM + np.sum(x ** 2 - 10 * np.cos(2 * np.pi * x)))


#: (function, start, initial spread, target value)
FUNCTIONS = {
    "sphere": (sphere, 3.0, 2.0, 1e-8),
    "ellipsoid 1e4": (ellipsoid, 3.0, 2.0, 1e-8),
    "rotated ellipsoid": (rotated_ellipsoid, 3.0, 2.0, 1e-8),
    "rosenbrock": (rosenbrock, 0.0, 0.5, 1e-8),
    "rastrigin": (rastrigin, 3.0, 2.0, 1.0),  # within 1 of the global optimum 0
}


def evaluations_to_target(opt, f, x0, sigma, target, budget, seed, popsize=None):
    """(evaluations until f < target or None, best value, seconds)."""
    hit = [None]
    count = [0]

    def g(x):
        value = f(x)
        count[0] += 1
        if hit[0] is None and value < target:
            hit[0] = count[0]
        return value

    t0 = time.perf_counter()
    res = opt(g, np.full(N_DIM, x0), sigma, max_evaluations=budget, seed=seed, popsize=popsize, tol_fun=0.0)
    return hit[0], res.fun, time.perf_counter() - t0


def functions_part(seeds, budget: int) -> str:
    lines = [f"test functions ({N_DIM} parameters, budget {budget}, seeds {seeds[0]}..{seeds[-1]}; interleaved)",
             f"  {'function':18s} {'optimiser':9s} {'reached':>8s} {'evals med':>10s} {'evals max':>10s} "
             f"{'best med':>10s}"]
    for name, (f, x0, sigma, target) in FUNCTIONS.items():
        out = {k: [] for k in OPTIMISERS}
        for i, seed in enumerate(seeds):
            order = list(OPTIMISERS) if i % 2 == 0 else list(OPTIMISERS)[::-1]
            for key in order:
                out[key].append(evaluations_to_target(OPTIMISERS[key], f, x0, sigma, target, budget, seed))
        for key in OPTIMISERS:
            hits = [h for h, _, _ in out[key] if h is not None]
            lines.append(f"  {name:18s} {key:9s} {len(hits):3d}/{len(seeds):<4d} "
                         f"{(f'{np.median(hits):10.0f}' if hits else '         -')} "
                         f"{(f'{max(hits):10d}' if hits else '         -')} "
                         f"{np.median([b for _, b, _ in out[key]]):10.2e}")
    return "\n".join(lines)


def overhead_part(reps: int) -> str:
    """The optimiser's own time in the registration's CMA-ES stages (the DRRs excluded):
    each stage's budget, population and bounds on a function that costs nothing."""
    from or_assist.register.settings import DEFAULT_STAGES, RegistrationSettings

    first, second = DEFAULT_STAGES[0], DEFAULT_STAGES[1]
    shapes = {"start (32 px)": (first.spread, first.evaluations, first.popsize, RegistrationSettings().bounds),
              "cma64": (second.spread, second.evaluations, second.popsize, 3 * np.asarray(second.spread))}
    lines = [f"optimiser time per registration stage (no DRRs; {reps} runs each, interleaved, median)",
             f"  {'stage':14s} {'ours ms':>8s} {'pycma ms':>9s}"]
    for name, (spread, budget, popsize, bounds) in shapes.items():
        t = {k: [] for k in OPTIMISERS}
        for i in range(reps):
            for key in (list(OPTIMISERS) if i % 2 == 0 else list(OPTIMISERS)[::-1]):
                t0 = time.perf_counter()
                OPTIMISERS[key](lambda x: float(np.sum(x ** 2)) + 1.0, np.zeros(N_DIM), spread,
                                max_evaluations=budget, popsize=popsize, seed=i, bounds=bounds, tol_fun=0.0)
                t[key].append(time.perf_counter() - t0)
        lines.append(f"  {name:14s} {1000 * np.median(t['ours']):8.1f} {1000 * np.median(t['pycma']):9.1f}")
    return "\n".join(lines)


def registration_part(seed: int, families, views, per_cell: int, verbose: bool, reg_seed: int = 0) -> str:
    from registration import (REAL_CT, REAL_PLAN, SUCCESS_MM, family_shots, target_points)  # noqa: E402

    from or_assist.core.ct.load import load_ct
    from or_assist.core.plan import load_plan
    from or_assist.register.pipeline import Registrar, registration_ct
    from or_assist.register.pose_params import target_error_mm
    from or_assist.register.settings import RegistrationSettings
    from or_assist.render.drr import AttenuationVolume, DRRRenderer

    ct, plan = load_ct(REAL_CT), load_plan(REAL_PLAN)
    # no time budget: on a loaded machine it would stop either optimiser by the load's
    # chance; the wall time each took is reported instead
    ours = RegistrationSettings(time_budget_s=None, seed=reg_seed)
    stages = tuple(replace(s, optimizer="pycma") if s.optimizer == "cma" else s for s in ours.stages)
    settings = {"ours": ours, "pycma": replace(ours, stages=stages)}
    reg_renderer = DRRRenderer(AttenuationVolume.from_ct(registration_ct(ct, ours)))
    points = target_points(plan, ct)
    rows = {k: [] for k in settings}
    shots = family_shots(ct, plan, views, families, per_cell, seed)
    for i, (view, family, k, shot, start, polarity, targets) in enumerate(shots):
        order = list(settings) if i % 2 == 0 else list(settings)[::-1]
        for key in order:
            registrar = Registrar(reg_renderer, shot.video_geometry, settings[key])
            res = registrar.register(shot.frame, start, polarity=polarity, target_lps_mm=targets)
            pose = res.pose if res.pose is not None else start
            m = target_error_mm(pose, shot.pose, points)
            rows[key].append({"mtre": m, "success": res.success, "seconds": res.seconds,
                              "n": res.n_evaluations})
            if verbose:
                print(f"  {view:7s} {family:12s} {k} {key:5s} -> {m:6.2f} mm ok={int(res.success)} "
                      f"{res.seconds:.2f} s {res.n_evaluations} DRRs", flush=True)
    n = len(rows["ours"])
    lines = [f"registration (real CT, seed {seed}, families {', '.join(families)}, views {', '.join(views)}, "
             f"{per_cell} per cell: {n} shots, the same shots and starts for both, interleaved; "
             f"optimiser seed {reg_seed}, no time budget)",
             f"  {'optimiser':9s} {'<2 mm':>7s} {'mTRE med':>9s} {'false conf':>10s} {'registered':>10s} "
             f"{'t med':>7s} {'t 95th':>7s} {'DRRs med':>8s}"]
    for key, sel in rows.items():
        m = np.array([r["mtre"] for r in sel])
        ok = np.array([r["success"] for r in sel], dtype=bool)
        t = np.array([r["seconds"] for r in sel])
        lines.append(f"  {key:9s} {100 * np.mean(m < SUCCESS_MM):6.1f}% {np.median(m):8.2f}  "
                     f"{100 * np.mean(ok & (m >= SUCCESS_MM)):9.1f}% {100 * ok.mean():9.1f}% "
                     f"{np.median(t):6.2f}s {np.percentile(t, 95):6.2f}s {np.median([r['n'] for r in sel]):8.0f}")
    both = [(a["mtre"] < SUCCESS_MM, b["mtre"] < SUCCESS_MM) for a, b in zip(rows["ours"], rows["pycma"])]
    lines.append(f"  within 2 mm with ours only: {sum(a and not b for a, b in both)}, "
                 f"with pycma only: {sum(b and not a for a, b in both)}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fn-seeds", type=int, default=20, help="seeds per test function (default 20)")
    ap.add_argument("--fn-seed0", type=int, default=100, help="first seed of the test functions")
    ap.add_argument("--fn-budget", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=31, help="registration shots' seed (default 31, held out)")
    ap.add_argument("--families", default="intensifier,low_dose,hard_beam,cluttered",
                    help="appearance families (default the held-out ones)")
    ap.add_argument("--views", default="lateral,inlet,outlet,ap")
    ap.add_argument("--per-cell", type=int, default=2, help="shots per view x family (default 2)")
    ap.add_argument("--skip-registration", action="store_true")
    ap.add_argument("--skip-functions", action="store_true")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--registration-seed", type=int, default=0,
                    help="RegistrationSettings.seed for both (another seed: other CMA-ES paths)")
    args = ap.parse_args(argv)
    import os

    started = time.perf_counter()
    load = os.getloadavg()[0]
    out = []
    if not args.skip_functions:
        out.append(functions_part(list(range(args.fn_seed0, args.fn_seed0 + args.fn_seeds)), args.fn_budget))
        print(out[-1], flush=True)
        out.append(overhead_part(20))
        print(out[-1], flush=True)
    if not args.skip_registration:
        out.append(registration_part(args.seed, args.families.split(","), args.views.split(","), args.per_cell,
                                     not args.quiet, args.registration_seed))
    print(f"\nCMA-ES, ours against pycma: {time.perf_counter() - started:.0f} s in all, "
          f"load average {load:.1f} at start, {os.getloadavg()[0]:.1f} at end, {os.cpu_count()} CPUs")
    print("\n\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
