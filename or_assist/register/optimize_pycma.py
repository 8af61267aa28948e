"""The reference CMA-ES (pycma, package ``cma``) behind :func:`~or_assist.register.optimize.cma_es`'s contract.

Issue 18 measured it against ours side by side (``benchmarks/library_libcma.py``,
docs/library_comparison_libcma.md); ours stays the registration's (see
:mod:`or_assist.register.optimize` for the figures). This one is kept so the comparison can
be rerun and a stage can use it (``Stage(optimizer='pycma')``); ``cma`` is an optional
extra (``pip install -e ".[pycma]"``, also in the test extra) and a clear error names it
when it is missing.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from or_assist.errors import InputError
from or_assist.register.optimize import Objective, OptimResult, _per_parameter, _vector

__all__ = ["pycma_es"]


def _import_cma():
    """pycma, imported without its note that matplotlib is missing (plots are never used)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*matplotlib.*")
        try:
            import cma
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise InputError("the reference CMA-ES needs the package 'cma' (pycma): pip install cma (the extra or_assist[pycma])",
                             "optimizer") from exc
    return cma


def pycma_es(f: Objective, x0: Sequence[float], sigma: Sequence[float] | float, *, max_evaluations: int = 200,
             popsize: int | None = None, seed: int = 0, bounds: Sequence[float] | None = None,
             tol_fun: float = 1e-6) -> OptimResult:
    """Minimise ``f`` with the reference CMA-ES (pycma's ``cma.CMAEvolutionStrategy``) from ``x0``.

    The same contract as :func:`cma_es`, so either can run a registration stage
    (``Stage(optimizer='pycma')``): the search runs in coordinates scaled by ``sigma``
    (initial step size 1), ``bounds`` become pycma's box ``x0 +- bounds`` (its default
    ``BoundTransform``: samples are mapped into the box smoothly rather than clipped), the
    ``f`` calls never exceed ``max_evaluations`` (generations are asked and told here; one
    that would overrun is not started) and the final mean is evaluated when one evaluation
    is left, as :func:`cma_es` does. The normal deviates come from
    ``numpy.random.default_rng(seed)`` (pycma's ``randn`` option), so a seed gives the same
    result on one build and numpy's global random state is neither read nor changed.
    pycma writes no files and prints nothing here (``verb_log=0``, ``verbose=-9``).

    Parameters
    ----------
    f : callable((n,) ndarray) -> float
    x0 : (n,) array_like
        Start (the distribution's initial mean).
    sigma : float or (n,) array_like
        Initial standard deviation per parameter (> 0).
    max_evaluations : int
        Budget of ``f`` calls (>= popsize + 1).
    popsize : int, optional
        Offspring per generation; default pycma's ``4 + floor(3 ln n)``.
    seed : int
        Seed of the sampling.
    bounds : float or (n,) array_like, optional
        The search stays within ``x0 +- bounds`` (in parameter units, > 0).
    tol_fun : float
        Stop, as :func:`cma_es` does, when the best values of the last generations differ
        by less than this and every standard deviation is below 0.05 (scaled units);
        pycma's own stops (stagnation, flat fitness, degenerate covariance) apply too.

    Returns
    -------
    OptimResult
        The best point evaluated; ``history`` holds the best value after each generation.
    """
    cma = _import_cma()
    x0 = _vector(x0, "x0")
    n = x0.size
    if n < 2:
        raise InputError(f"pycma needs at least 2 parameters, got {n}", "x0")
    scale = _per_parameter(sigma, n, "sigma")
    lam = int(popsize) if popsize is not None else 4 + int(3 * math.log(n))
    if lam < 2:
        raise InputError(f"must be >= 2, got {popsize!r}", "popsize")
    if int(max_evaluations) < lam + 1:
        raise InputError(f"must be at least popsize + 1 = {lam + 1}, got {max_evaluations!r}", "max_evaluations")
    rng = np.random.default_rng(seed)
    opts = {"popsize": lam, "seed": float("nan"), "randn": lambda *shape: rng.standard_normal(shape),
            "tolfun": 0.0, "tolx": 0.0, "maxfevals": int(max_evaluations),
            "verbose": -9, "verb_log": 0, "verb_disp": 0}
    if bounds is not None:
        b = np.broadcast_to(_per_parameter(bounds, n, "bounds"), (n,)) / scale
        opts["bounds"] = [list(-b), list(b)]
    es = cma.CMAEvolutionStrategy(np.zeros(n), 1.0, opts)
    best_z, best_f = np.zeros(n), float(f(x0))
    evals = 1
    history = [best_f]
    while evals + lam <= max_evaluations and not es.stop():
        zs = es.ask()
        fs = [float(f(x0 + scale * np.asarray(z))) for z in zs]
        evals += lam
        es.tell(zs, fs)
        k = int(np.argmin(fs))
        if fs[k] < best_f:
            best_f, best_z = fs[k], np.array(zs[k], dtype=np.float64)
        history.append(best_f)
        if (len(history) > 4 and max(history[-4:]) - min(history[-4:]) < tol_fun
                and float(np.max(es.stds)) < 0.05):
            break  # cma_es's stop: flat and narrow
    if evals < max_evaluations:
        z_mean = np.asarray(es.boundary_handler.repair(es.mean) if bounds is not None else es.mean, dtype=np.float64)
        f_mean = float(f(x0 + scale * z_mean))
        evals += 1
        if f_mean < best_f:
            best_f, best_z = f_mean, z_mean
    return OptimResult(x0 + scale * best_z, best_f, evals, history)
