"""Derivative-free optimisers for registration: a seeded CMA-ES and a compass search.

Both *minimise* ``f(x)`` over a parameter vector whose components have comparable scales
(registration passes degrees and millimetres, see :mod:`or_assist.register.pose_params`).
Both are deterministic for a given seed and stop at an evaluation budget, so the time a
registration takes is bounded.

* :func:`cma_es`: the covariance matrix adaptation evolution strategy (Hansen 2016, "The
  CMA Evolution Strategy: A Tutorial", default weights and learning rates), in plain
  numpy; global and robust to local optima for the coarse search. It stays the
  registration's (issue 18, ``benchmarks/library_libcma.py``, docs/library_comparison_libcma.md):
  against the reference implementation (:func:`~or_assist.register.optimize_pycma.pycma_es`, pycma) on the same 32 held-out
  shots and starts with two optimiser seeds, within 2 mm 53 of 64 against pycma's 56
  (6 with pycma only, 3 with ours only: a difference within the path's chance), but
  confident while over 2 mm 2 of 64 against pycma's 4 (both extra on one shot, at 2.07
  and 3.22 mm, where ours ended at 1.92 and 1.41 mm), and the thresholds of
  :mod:`~or_assist.register.settings` are calibrated with it; its own time is 3 ms per
  start against pycma's 28 ms. pycma needs 25-30 % fewer evaluations on ill-conditioned
  test functions (its active covariance update).
* :func:`~or_assist.register.optimize_pycma.pycma_es` (its own module): the reference
  CMA-ES (package ``cma``, the optional extra ``pycma``) behind the same contract, for the
  side-by-side and for ``Stage(optimizer='pycma')``.
* :func:`compass_search`: a coordinate pattern search with step halving (Kolda, Lewis
  and Torczon 2003) for the local refinement at the finest level, where each
  evaluation is expensive and the start is close.
* :func:`quadratic_model_search`: SciPy's COBYQA (Ragonneau and Zhang 2023; Powell's
  derivative-free trust-region method with quadratic models) for the same refinement.
  It learns how the parameters interact (depth against tilt), so it needs fewer DRRs:
  on real-CT shots of the calibration families it reached the compass search's final
  similarity (110 + 60 DRRs) in about 40 (``benchmarks/registration.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from or_assist.errors import InputError

__all__ = ["OptimResult", "cma_es", "compass_search", "quadratic_model_search", "parabola_vertex"]

Objective = Callable[[np.ndarray], float]


@dataclass
class OptimResult:
    """Outcome of an optimiser.

    Attributes
    ----------
    x : (n,) float64 ndarray
        Best parameters found.
    fun : float
        ``f(x)``.
    n_evaluations : int
    history : list of float
        Best value after each generation (CMA-ES) or iteration (compass search).
    stopped_early : bool
        The caller's ``stop_when`` ended the search (compass search).
    """

    x: np.ndarray
    fun: float
    n_evaluations: int
    history: list = field(default_factory=list)
    stopped_early: bool = False


def _vector(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    if a.size == 0 or not np.all(np.isfinite(a)):
        raise InputError(f"must be a non-empty finite vector, got {x!r}", name)
    return a


def _per_parameter(value, n: int, name: str) -> np.ndarray:
    """``value`` (a number or one per parameter) as (n,) float64, every entry > 0."""
    a = np.broadcast_to(_vector(value, name), (n,)).astype(np.float64)
    if np.any(a <= 0):
        raise InputError(f"must be > 0, got {value!r}", name)
    return a


def cma_es(f: Objective, x0: Sequence[float], sigma: Sequence[float] | float, *, max_evaluations: int = 200,
           popsize: int | None = None, seed: int = 0, bounds: Sequence[float] | None = None,
           tol_fun: float = 1e-6) -> OptimResult:
    """Minimise ``f`` with CMA-ES from ``x0``.

    Deterministic for a seed on one numpy/BLAS build. On another build the path may differ
    (``numpy.linalg.eigh`` may return the covariance's eigenvectors with other signs, or
    other directions for nearly equal eigenvalues: other samples of the same distribution),
    so a seed's end point there is another draw; pycma (:func:`~or_assist.register.optimize_pycma.pycma_es`) has the same
    property. What holds on every build is what the method guarantees: the budget, the
    stop rule, the convergence rate (tests/register/test_register_parts.py).
    Kept against pycma with the figures in the module docstring.

    Parameters
    ----------
    f : callable((n,) ndarray) -> float
    x0 : (n,) array_like
        Start (the distribution's initial mean).
    sigma : float or (n,) array_like
        Initial standard deviation per parameter (> 0); the search runs in coordinates
        scaled by it, so each parameter's initial spread is its own.
    max_evaluations : int
        Budget of ``f`` calls.
    popsize : int, optional
        Offspring per generation; default ``4 + floor(3 ln n)``.
    seed : int
        Seed of the sampling (``numpy.random.default_rng``).
    bounds : float or (n,) array_like, optional
        Samples are clipped to ``x0 +- bounds`` (in parameter units).
    tol_fun : float
        Stop when the best values of the last generations differ by less than this.

    Returns
    -------
    OptimResult
    """
    x0 = _vector(x0, "x0")
    n = x0.size
    scale = _per_parameter(sigma, n, "sigma")
    lam = int(popsize) if popsize is not None else 4 + int(3 * math.log(n))
    if lam < 2:
        raise InputError(f"must be >= 2, got {popsize!r}", "popsize")
    lo = hi = None
    if bounds is not None:
        b = np.broadcast_to(_vector(bounds, "bounds"), (n,)) / scale
        lo, hi = -b, b
    rng = np.random.default_rng(seed)
    mu = lam // 2
    w = math.log(mu + 0.5) - np.log(np.arange(1, mu + 1))
    w /= w.sum()
    mueff = 1.0 / np.sum(w ** 2)
    cc = (4 + mueff / n) / (n + 4 + 2 * mueff / n)
    cs = (mueff + 2) / (n + mueff + 5)
    c1 = 2 / ((n + 1.3) ** 2 + mueff)
    cmu = min(1 - c1, 2 * (mueff - 2 + 1 / mueff) / ((n + 2) ** 2 + mueff))
    damps = 1 + 2 * max(0.0, math.sqrt((mueff - 1) / (n + 1)) - 1) + cs
    chin = math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n * n))

    mean = np.zeros(n)
    step = 1.0
    pc = np.zeros(n)
    ps = np.zeros(n)
    cov = np.eye(n)
    b_mat = np.eye(n)
    d_vec = np.ones(n)
    best_x, best_f = mean.copy(), float(f(x0))
    evals, gen = 1, 0
    history = [best_f]
    while evals + lam <= max_evaluations:
        gen += 1
        z = rng.standard_normal((lam, n))
        y = (z * d_vec) @ b_mat.T
        xs = mean + step * y
        if lo is not None:
            xs = np.clip(xs, lo, hi)
        fs = np.array([float(f(x0 + scale * x)) for x in xs])
        evals += lam
        order = np.argsort(fs, kind="stable")
        if fs[order[0]] < best_f:
            best_f, best_x = float(fs[order[0]]), xs[order[0]].copy()
        ysel = (xs[order[:mu]] - mean) / step
        yw = w @ ysel
        mean = mean + step * yw
        inv_sqrt = b_mat @ np.diag(1 / d_vec) @ b_mat.T
        ps = (1 - cs) * ps + math.sqrt(cs * (2 - cs) * mueff) * (inv_sqrt @ yw)
        hsig = np.linalg.norm(ps) / math.sqrt(1 - (1 - cs) ** (2 * gen)) / chin < 1.4 + 2 / (n + 1)
        pc = (1 - cc) * pc + hsig * math.sqrt(cc * (2 - cc) * mueff) * yw
        cov = ((1 - c1 - cmu) * cov + c1 * (np.outer(pc, pc) + (not hsig) * cc * (2 - cc) * cov)
               + cmu * (ysel.T * w) @ ysel)
        step *= math.exp((cs / damps) * (np.linalg.norm(ps) / chin - 1))
        cov = (cov + cov.T) / 2
        evals_c, vecs = np.linalg.eigh(cov)
        d_vec = np.sqrt(np.maximum(evals_c, 1e-20))
        b_mat = vecs
        history.append(best_f)
        if len(history) > 4 and max(history[-4:]) - min(history[-4:]) < tol_fun and step * d_vec.max() < 0.05:
            break
    # the final mean is often better than any sample
    if evals < max_evaluations + 1:
        x_mean = mean if lo is None else np.clip(mean, lo, hi)
        f_mean = float(f(x0 + scale * x_mean))
        evals += 1
        if f_mean < best_f:
            best_f, best_x = f_mean, x_mean
    return OptimResult(x0 + scale * best_x, best_f, evals, history)


def compass_search(f: Objective, x0: Sequence[float], steps: Sequence[float] | float, *,
                   min_steps: Sequence[float] | float | None = None, max_evaluations: int = 100,
                   f0: float | None = None, pattern: bool = False,
                   stop_when: Callable[[np.ndarray], bool] | None = None) -> OptimResult:
    """Minimise ``f`` by a compass search from ``x0``.

    An *exploratory* sweep tries ``x +- step_i e_i`` for each coordinate in turn, keeping
    every improvement (and, without ``pattern``, repeating a successful step along its
    coordinate while it pays). With ``pattern`` (Hooke and Jeeves) a successful sweep is
    followed by a *pattern move* that jumps on by the sweep's displacement again. After
    an unsuccessful sweep every step is halved, until all steps are below ``min_steps``
    or the budget is spent.

    Parameters
    ----------
    f : callable((n,) ndarray) -> float
    x0 : (n,) array_like
    steps : float or (n,) array_like
        Initial step per parameter (> 0).
    min_steps : float or (n,) array_like, optional
        Stop when every step is below this; default ``steps / 16``.
    max_evaluations : int
    f0 : float, optional
        ``f(x0)`` if already known (saves one evaluation).
    pattern : bool
        Hooke-Jeeves pattern moves instead of repeated coordinate steps.
    stop_when : callable((n,) ndarray) -> bool, optional
        Called with each better point the exploratory sweep finds; True ends the search
        there (``stopped_early``), e.g. once it has reached an optimum found before.

    Returns
    -------
    OptimResult
    """
    x = _vector(x0, "x0").copy()
    n = x.size
    h = _per_parameter(steps, n, "steps")
    h_min = h / 16 if min_steps is None else np.broadcast_to(_vector(min_steps, "min_steps"), (n,))
    budget = [int(max_evaluations)]
    stopped = [False]

    def evaluate(p):
        budget[0] -= 1
        return float(f(p))

    def better(p) -> bool:
        """Whether the caller stops at the new best point ``p`` (the search ends)."""
        stopped[0] = stop_when is not None and bool(stop_when(p))
        return stopped[0]

    fx = evaluate(x) if f0 is None else float(f0)
    history = [fx]

    def explore(base, fbase):
        for i in range(n):
            if budget[0] <= 0:
                break
            for sign in (1.0, -1.0):
                if budget[0] <= 0:
                    break
                trial = base.copy()
                trial[i] += sign * h[i]
                ft = evaluate(trial)
                if ft < fbase:
                    base, fbase = trial, ft
                    if better(base):
                        return base, fbase
                    while not pattern and budget[0] > 0:  # keep going while it pays
                        trial = base.copy()
                        trial[i] += sign * h[i]
                        ft = evaluate(trial)
                        if ft >= fbase:
                            break
                        base, fbase = trial, ft
                        if better(base):
                            return base, fbase
                    break
        return base, fbase

    while budget[0] > 0 and np.any(h >= h_min) and not stopped[0]:
        xn, fn = explore(x, fx)
        if fn < fx and not pattern:
            x, fx = xn, fn
        elif fn < fx:
            while budget[0] > 0 and not stopped[0]:  # pattern moves while they pay
                xp = xn + (xn - x)
                x, fx = xn, fn
                fp = evaluate(xp)
                xe, fe = explore(xp, fp)
                if fe < fx:
                    xn, fn = xe, fe
                else:
                    break
            x, fx = (xn, fn) if fn < fx else (x, fx)
        else:
            h = h / 2
        history.append(fx)
    return OptimResult(x, fx, int(max_evaluations) - budget[0], history, stopped[0])


def quadratic_model_search(f: Objective, x0: Sequence[float], steps: Sequence[float] | float, *,
                           max_evaluations: int = 40, final_fraction: float = 0.05,
                           bound_steps: float = 4.0) -> OptimResult:
    """Minimise ``f`` near ``x0`` with COBYQA (:func:`scipy.optimize.minimize`).

    The parameters are scaled by ``steps`` so that the trust region is a ball: it starts
    at one step and ends at ``final_fraction`` of one; the search stays within
    ``bound_steps`` steps of ``x0`` per parameter.

    Parameters
    ----------
    f : callable((n,) ndarray) -> float
    x0 : (n,) array_like
    steps : float or (n,) array_like
        Scale per parameter (> 0): the first trust-region radius.
    max_evaluations : int
        Budget of ``f`` evaluations (>= n + 2).
    final_fraction : float
        Final trust-region radius in steps (0 < ... < 1).
    bound_steps : float
        Bound of the search per parameter, in steps (>= 1).

    Returns
    -------
    OptimResult
        The best point evaluated (``history`` holds every value).
    """
    from scipy.optimize import minimize

    x = _vector(x0, "x0")
    n = x.size
    h = _per_parameter(steps, n, "steps")
    if int(max_evaluations) < n + 2:
        raise InputError(f"must be at least {n + 2} for {n} parameters, got {max_evaluations!r}", "max_evaluations")
    if not 0 < final_fraction < 1:
        raise InputError(f"must be in (0, 1), got {final_fraction!r}", "final_fraction")
    if not bound_steps >= 1:
        raise InputError(f"must be >= 1, got {bound_steps!r}", "bound_steps")
    history: list[float] = []
    best = [np.inf, np.zeros(n)]

    def g(z):
        value = float(f(x + z * h))
        history.append(value)
        if value < best[0]:
            best[0], best[1] = value, np.array(z, dtype=np.float64)
        return value

    minimize(g, np.zeros(n), method="COBYQA", bounds=[(-bound_steps, bound_steps)] * n,
             options={"maxfev": int(max_evaluations), "initial_tr_radius": 1.0,
                      "final_tr_radius": float(final_fraction)})
    return OptimResult(x + best[1] * h, float(best[0]), len(history), history)


def parabola_vertex(left: float, middle: float, right: float) -> float | None:
    """Where the parabola through three equally spaced samples peaks.

    Parameters
    ----------
    left, middle, right : float
        The samples at -1, 0 and +1 (in sample steps).

    Returns
    -------
    float or None
        The vertex's offset from the middle sample, in sample steps (unclipped); None where
        the parabola has no maximum (not concave: the middle is not above the mean of the ends).
    """
    curvature = left - 2.0 * middle + right
    return None if not curvature < 0 else float(0.5 * (left - right) / curvature)
