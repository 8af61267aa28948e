"""Cohort evaluation: many post-op cases in one table and a learning-curve plot.

Cases come from ``PLAN:POSTOP[:PREOP]`` arguments or a cohort file, in case order (the
order the operations were done, for the learning curve). Cohort file: CSV, UTF-8, a
header naming the columns ``plan`` and ``postop`` (required), ``preop`` and ``case``
(optional); lines starting with ``#`` are comments; relative paths resolve against the
file's folder::

    case,plan,postop
    01,case01/plan.json,case01/postop_ct
    02,case02/plan.json,case02/postop.nii.gz

Outputs (:func:`evaluate_cohort`): ``cohort.json`` (schema ``or_assist.postop_cohort/1``:
per-case evaluations and the summary), ``cohort_implants.csv`` (one row per implant),
``learning_curve.png`` (apex deviation and angle per implant against case order, with
the per-case means; drawn with OpenCV), and the table as text. Statistics as in the seed
study: mean +- SD (sample SD) over all found implants; learning curve: least-squares
slope of the per-case mean apex deviation against case order, with Pearson's r.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from or_assist.core.outputs import write_bytes_atomic, write_errors, write_image
from or_assist.errors import InputError, OrAssistError

__all__ = ["COHORT_SCHEMA", "CohortCase", "parse_case_argument", "read_cohort_file", "cohort_summary",
           "draw_learning_curve", "CohortFiles", "evaluate_cohort"]

COHORT_SCHEMA = "or_assist.postop_cohort/1"


@dataclass(frozen=True)
class CohortCase:
    """One case of a cohort: its name and files."""

    case_id: str
    plan_path: Path
    postop_path: Path
    preop_path: Path | None = None


def parse_case_argument(text: str, index: int) -> CohortCase:
    """Parse ``PLAN:POSTOP`` or ``PLAN:POSTOP:PREOP`` (the case is named by its position).

    Raises
    ------
    InputError
        Not two or three non-empty parts.
    """
    parts = str(text).split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise InputError(f"expected PLAN:POSTOP or PLAN:POSTOP:PREOP, got {text!r}", f"--cohort case {index + 1}")
    return CohortCase(f"{index + 1:02d}", Path(parts[0]), Path(parts[1]), Path(parts[2]) if len(parts) == 3 else None)


#: Largest cohort CSV read (bytes): one short line per case.
MAX_COHORT_FILE_BYTES = 16 * 2**20


def _cohort_text(p: Path) -> str:
    """The file's text; a binary, non-UTF-8 or oversized file gives one InputError."""
    try:
        size = p.stat().st_size
        if size > MAX_COHORT_FILE_BYTES:
            raise InputError(f"{size / 2**20:.0f} MiB is too large for a cohort CSV "
                             f"(at most {MAX_COHORT_FILE_BYTES // 2**20} MiB)", str(p))
        raw = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the file ({exc.strerror or exc})", str(p)) from None
    nul = raw.find(b"\0")
    if nul >= 0:
        raise InputError(f"a binary file (NUL byte at offset {nul}), expected a UTF-8 CSV text "
                         f"file with columns plan, postop[, preop, case]", str(p))
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); expected a CSV "
                         f"file with columns plan, postop[, preop, case]", str(p)) from None


def read_cohort_file(path: str | os.PathLike) -> list[CohortCase]:
    """Read a cohort CSV file (format: module doc).

    Raises
    ------
    InputError
        Missing file, no ``plan``/``postop`` column, an empty cell, no cases, or
        duplicate case names; the message names the file and line.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError("cohort file not found", str(p))
    lines = [ln for ln in _cohort_text(p).splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    try:
        rows = list(csv.DictReader(lines))
        header = [h.strip() for h in (csv.DictReader(lines).fieldnames or [])]
    except csv.Error as exc:
        raise InputError(f"not a readable CSV file ({exc})", str(p)) from None
    missing = [c for c in ("plan", "postop") if c not in header]
    if missing:
        raise InputError(f"the header must name the columns plan and postop (optional preop, case); "
                         f"missing {', '.join(missing)}, got {header}", str(p))
    cases = []
    for k, row in enumerate(rows):
        where = f"{p}: case {k + 1}"
        if None in row:
            raise InputError(f"more cells than the header's {len(header)} columns ({', '.join(header)})", where)
        row = {(key or "").strip(): (val or "").strip() for key, val in row.items()}
        if not row.get("plan") or not row.get("postop"):
            raise InputError("empty plan or postop cell", where)
        base = p.resolve().parent

        def resolve(text: str) -> Path:
            q = Path(text)
            return q if q.is_absolute() else base / q

        cases.append(CohortCase(row.get("case") or f"{k + 1:02d}", resolve(row["plan"]), resolve(row["postop"]),
                                resolve(row["preop"]) if row.get("preop") else None))
    if not cases:
        raise InputError("no cases", str(p))
    ids = [c.case_id for c in cases]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise InputError(f"duplicate case names {', '.join(dup)}", str(p))
    return cases


def _mean_sd(values: list[float]) -> dict | None:
    if not values:
        return None
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max()), "n": int(v.size)}


def cohort_summary(results: Sequence[tuple[CohortCase, object]]) -> dict:
    """Statistics over a cohort.

    Parameters
    ----------
    results : sequence of (CohortCase, CaseEvaluation or str)
        In case order; a str is the error that stopped that case.

    Returns
    -------
    dict
        ``cases`` (per case: order, id, found/planned, extra, breaches, mean apex deviation
        and angle, or the error), ``implants`` (per found implant: case order, id, apex
        deviation, angle, entry deviation, breach), ``apex_deviation_mm``, ``angle_deg``,
        ``entry_deviation_mm`` (mean, sd, min, max, n over implants), ``learning_curve``
        (``slope_mm_per_case``, ``pearson_r``, ``cases``) or None with fewer than 3 cases.
    """
    cases, implants = [], []
    for order, (case, res) in enumerate(results, start=1):
        if isinstance(res, str):
            cases.append({"order": order, "case": case.case_id, "error": res})
            continue
        found = res.found()
        for i in found:
            implants.append({"order": order, "case": case.case_id, "implant": i.id,
                             "apex_deviation_mm": i.apex_deviation_mm, "angle_deg": i.angle_deg,
                             "entry_deviation_mm": i.entry_deviation_mm, "breach": i.breach})
        cases.append({"order": order, "case": case.case_id, "planned": len(res.implants), "found": len(found),
                      "extra": len(res.extra), "breaches": sum(1 for i in found if i.breach),
                      "apex_deviation_mm": float(np.mean([i.apex_deviation_mm for i in found])) if found else None,
                      "angle_deg": float(np.mean([i.angle_deg for i in found])) if found else None})
    curve = None
    pts = [(c["order"], c["apex_deviation_mm"]) for c in cases if c.get("apex_deviation_mm") is not None]
    if len(pts) >= 3:
        x, y = np.array(pts, dtype=np.float64).T
        slope = float(np.polyfit(x, y, 1)[0])
        r = float(np.corrcoef(x, y)[0, 1]) if np.std(y) > 0 else 0.0
        curve = {"slope_mm_per_case": slope, "pearson_r": r, "cases": len(pts)}
    return {"cases": cases, "implants": implants,
            "apex_deviation_mm": _mean_sd([i["apex_deviation_mm"] for i in implants]),
            "angle_deg": _mean_sd([i["angle_deg"] for i in implants]),
            "entry_deviation_mm": _mean_sd([i["entry_deviation_mm"] for i in implants]),
            "breaches": sum(1 for i in implants if i["breach"]), "learning_curve": curve}


def _panel(img, box, xs, ys, means, n_cases: int, label: str, colour) -> None:
    import cv2

    x0, y0, x1, y1 = box
    top = max([1.0] + list(ys) + [m for m in means if m is not None]) * 1.15
    cv2.rectangle(img, (x0, y0), (x1, y1), (0, 0, 0), 1)

    def px(order, value):
        return (int(x0 + (order - 0.5) / max(n_cases, 1) * (x1 - x0)), int(y1 - value / top * (y1 - y0)))

    step = 10 ** np.floor(np.log10(top / 2)) if top > 0 else 1
    for t in np.arange(0, top, step if top / step <= 8 else 2 * step):
        _, yy = px(0.5, t)
        cv2.line(img, (x0 - 4, yy), (x0, yy), (0, 0, 0), 1)
        cv2.putText(img, f"{t:g}", (x0 - 40, yy + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    for order in range(1, n_cases + 1):
        xx, _ = px(order, 0)
        cv2.line(img, (xx, y1), (xx, y1 + 4), (0, 0, 0), 1)
        if n_cases <= 30 or order % 5 == 0:
            cv2.putText(img, str(order), (xx - 6, y1 + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    for order, value in zip(xs, ys):
        cv2.circle(img, px(order, value), 4, colour, -1, cv2.LINE_AA)
    pts = [px(o, m) for o, m in enumerate(means, start=1) if m is not None]
    for a, b in zip(pts[:-1], pts[1:]):
        cv2.line(img, a, b, (60, 60, 60), 2, cv2.LINE_AA)
    cv2.putText(img, label, (x0 + 8, y0 + 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)


def draw_learning_curve(summary: dict, path: str | os.PathLike) -> Path:
    """PNG of apex deviation and angle per implant (dots) and per-case means (line) against
    case order; returns the path written."""
    import cv2

    w, h = 900, 620
    img = np.full((h, w, 3), 255, np.uint8)
    n = len(summary["cases"])
    imp = summary["implants"]
    xs = [i["order"] for i in imp]
    dev_means = [c.get("apex_deviation_mm") for c in summary["cases"]]
    ang_means = [c.get("angle_deg") for c in summary["cases"]]
    _panel(img, (70, 40, w - 30, 290), xs, [i["apex_deviation_mm"] for i in imp], dev_means, n,
           "apex deviation (mm)", (200, 90, 30))
    _panel(img, (70, 330, w - 30, 580), xs, [i["angle_deg"] for i in imp], ang_means, n, "angle (deg)",
           (40, 40, 200))
    cv2.putText(img, "case order", (w // 2 - 40, h - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "post-op evaluation: learning curve", (70, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1,
                cv2.LINE_AA)
    return write_image(path, img, what="the plot")


@dataclass(frozen=True)
class CohortFiles:
    """A cohort evaluated and written (``or-assist evaluate --cohort ... --out DIR``).

    Attributes
    ----------
    summary : dict
        :func:`cohort_summary` of the cases.
    written : list of Path
        ``cohort.json``, ``cohort_implants.csv`` and ``learning_curve.png``.
    """

    summary: dict
    written: list[Path]


def evaluate_cohort(out_dir: str | os.PathLike, *, pairs: Sequence[str] = (),
                    cohort_file: str | os.PathLike | None = None, ignore_hash: bool = False) -> CohortFiles:
    """``or-assist evaluate --cohort PLAN:POSTOP ... | --cohort-file FILE --out DIR``.

    Parameters
    ----------
    out_dir : path-like
        Folder for ``cohort.json``, ``cohort_implants.csv``, ``learning_curve.png``.
    pairs : sequence of str
        ``PLAN:POSTOP[:PREOP]`` per case, in case order.
    cohort_file : path-like, optional
        A cohort CSV file (module doc); its cases come after ``pairs``.
    ignore_hash : bool
        Accept pre-op CTs whose SHA-256 differs from their plan's.

    Returns
    -------
    CohortFiles
        A case that fails (bad file, no implants, scans that do not overlap) is listed in
        the summary with its error and left out of the statistics.

    Raises
    ------
    InputError
        No cases given, a malformed case argument or cohort file, or every case failed.
    """
    from or_assist.core import jsonio
    from or_assist.core.ct.load import load_ct
    from or_assist.core.plan import load_plan, load_plan_ct
    from or_assist.postop.evaluate import evaluate_case

    cases = [parse_case_argument(t, k) for k, t in enumerate(pairs)]
    if cohort_file is not None:
        cases += read_cohort_file(cohort_file)
    if not cases:
        raise InputError("no cases: give PLAN:POSTOP pairs or a cohort file", "--cohort")
    results = []
    for case in cases:
        try:
            plan = load_plan(case.plan_path)
            preop, _ = load_plan_ct(plan, ct_path=case.preop_path, allow_ct_mismatch=ignore_hash)
            results.append((case, evaluate_case(plan, load_ct(case.postop_path), preop)))
        except OrAssistError as exc:
            results.append((case, str(exc)))
    if all(isinstance(r, str) for _, r in results):
        raise InputError("every case failed: " + "; ".join(f"case {c.case_id}: {r}" for c, r in results), "--cohort")
    summary = cohort_summary(results)
    out = Path(out_dir)
    with write_errors(out, "the cohort folder"):
        out.mkdir(parents=True, exist_ok=True)
    doc = {"schema": COHORT_SCHEMA, "summary": summary,
           "cases": [{"case": c.case_id, "plan": str(c.plan_path), "postop_ct": str(c.postop_path),
                      "evaluation": r if isinstance(r, str) else r.to_dict()} for c, r in results]}
    jsonio.write_json(out / "cohort.json", doc)
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, ["order", "case", "implant", "apex_deviation_mm", "angle_deg",
                                    "entry_deviation_mm", "breach"])
    writer.writeheader()
    writer.writerows(summary["implants"])
    write_bytes_atomic(out / "cohort_implants.csv", table.getvalue().encode("utf-8"), what="the cohort table")
    png = draw_learning_curve(summary, out / "learning_curve.png")
    return CohortFiles(summary, [out / "cohort.json", out / "cohort_implants.csv", Path(png)])
