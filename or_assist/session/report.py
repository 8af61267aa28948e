"""The case report: one self-contained HTML file (and a PDF through Chromium if present).

:func:`build_report` reads a case folder (:class:`~or_assist.session.caselog.CaseLog`,
read-only) and writes ``report.html`` with every image embedded as a base64 PNG, so the
file can be mailed or archived alone. Sections:

* the case (id, times, app version, plan hash, geometry) and any problems found in the
  case (missing or damaged images, an interrupted case);
* the plan: one row per implant (side, level, size, entry, apex, length);
* registration statistics: shots, registered, success rate, median time and similarity;
* per implant the final 2-D deviation (tip offset, angle) and 3-D deviation (apex
  deviation, angle) with the cue shown then;
* per implant the latest two-view 3-D deviation recorded with any shot (captured or not):
  apex deviation and angle with their 1-sigma uncertainty and the two shots that gave
  them, beside what the post-operative CT evaluation (``or-assist evaluate``) measures on
  the placed implant, the metric they predict (its numbers when an
  ``or_assist.postop_evaluation/1`` file is given); an implant without one says why;
* a timeline of shots (with thumbnails), captures and events;
* every capture: the overlay exactly as shown, its cue and all its numbers.

Images leave with burnt-in text masked unless ``mask_text=False``, and with
``pseudonymise`` the report carries no names, paths or dates (times from the start of the
case), by the rules of :mod:`or_assist.session.export`. A print stylesheet keeps each
capture on one page. :func:`~or_assist.session.report_pdf.export_pdf` prints the HTML with headless Chromium
(``--print-to-pdf``) when a ``chromium`` executable is found.
"""

from __future__ import annotations

import base64
import os
import statistics
import time
from html import escape
from pathlib import Path

import cv2
import numpy as np

from or_assist.core.outputs import write_errors
from or_assist.errors import InputError
from or_assist.session.caselog import CaseLog
from or_assist.session.export import pseudonymise_summary, shown_image
from or_assist.session.images import FILE_MODE, encode_png, write_file_atomic
from or_assist.session.report_3d import latest_3d, plus_minus, read_postop_numbers, three_d_section
from or_assist.session.report_html import CSS, SCRIPT, cue_html, fmt, kv_table, table

__all__ = ["REPORT_NAME", "build_report", "registration_stats", "final_deviations"]

REPORT_NAME = "report.html"
_THUMB_WIDTH_PX = 320
_MAX_WIDTH_PX = 1280


# --------------------------------------------------------------------------- numbers


def registration_stats(shots: list[dict]) -> dict:
    """Counts and medians of the shots' registrations.

    Returns
    -------
    dict
        ``shots``, ``registered`` (with a result), ``succeeded``, ``success_rate`` (of the
        registered, or None), ``median_seconds``, ``median_similarity``,
        ``median_estimated_error_mm`` (of the successful ones that carry an estimate, or
        None), ``metric`` and ``failure_reasons`` (``{reason: count}``).
    """
    regs = [s["registration"] for s in shots if isinstance(s.get("registration"), dict)]
    ok = [r for r in regs if r.get("success") is True]
    secs = [float(r["seconds"]) for r in regs if isinstance(r.get("seconds"), (int, float))]
    sims = [float(r["similarity"]) for r in ok if isinstance(r.get("similarity"), (int, float))]
    ests = [float(r["estimated_error_mm"]) for r in ok if isinstance(r.get("estimated_error_mm"), (int, float))]
    metrics = sorted({str(r["metric"]) for r in regs if r.get("metric")})
    reasons: dict[str, int] = {}
    for r in regs:
        if r.get("success") is not True:
            key = str(r.get("reason") or "not confident")
            reasons[key] = reasons.get(key, 0) + 1
    return {"shots": len(shots), "registered": len(regs), "succeeded": len(ok),
            "success_rate": len(ok) / len(regs) if regs else None,
            "median_seconds": statistics.median(secs) if secs else None,
            "median_similarity": statistics.median(sims) if sims else None,
            "median_estimated_error_mm": statistics.median(ests) if ests else None,
            "metric": ", ".join(metrics) or None, "failure_reasons": reasons}


def final_deviations(captures: list[dict]) -> dict[str, dict]:
    """Per implant id, the last capture with a 2-D and the last with a 3-D deviation.

    Returns
    -------
    dict
        ``{implant_id: {"2d": (capture, deviation_2d) or None, "3d": (capture, deviation_3d)
        or None}}``; captures without an implant are under ``"(none)"``.
    """
    out: dict[str, dict] = {}
    for c in captures:
        entry = out.setdefault(c["implant_id"] or "(none)", {"2d": None, "3d": None})
        for key, name in (("2d", "deviation_2d"), ("3d", "deviation_3d")):
            dev = c["deviations"].get(name)
            if isinstance(dev, dict):
                entry[key] = (c, dev)
    return out


# --------------------------------------------------------------------------- images


def _to_display(image: np.ndarray, max_width_px: int) -> np.ndarray:
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    h, w = image.shape[:2]
    if w > max_width_px:
        image = cv2.resize(image, (max_width_px, max(1, round(h * max_width_px / w))), interpolation=cv2.INTER_AREA)
    return image


def _img_html(log, path, sha, masks, mask_text, max_width_px, alt, problems, hide) -> str:
    if path is None:
        return ""
    try:
        image, note = shown_image(log, path, sha, masks, mask_text=mask_text)
    except InputError as exc:
        msg = hide(str(exc))
        problems.append(msg)
        return f'<div class="missing">{escape(msg)}</div>'
    data = base64.b64encode(encode_png(_to_display(image, max_width_px), alt)).decode("ascii")
    return (f'<figure><img alt="{escape(alt)}" src="data:image/png;base64,{data}" '
            f'onload="imgDone(this, \'loaded\')" onerror="imgDone(this, \'error\')">'
            f'<figcaption>{escape(alt)} ({escape(note)})</figcaption></figure>')


# --------------------------------------------------------------------------- sections


def _when(t, start, pseudonymise) -> str:
    rel = float(t) - float(start)
    sign = "-" if rel < 0 else "+"
    m, s = divmod(abs(int(round(rel))), 60)
    stamp = f"T{sign}{m // 60:02d}:{m % 60:02d}:{s:02d}"
    if pseudonymise:
        return stamp
    return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(t))} ({stamp})"


def _case_section(s: dict, pseudonymise: bool) -> str:
    rows = [("Case", s["case_id"])]
    if pseudonymise:
        rows.append(("Duration", "-" if s["duration_s"] is None else f"{s['duration_s'] / 60:.1f} min"))
    else:
        rows += [("Patient", s["patient_label"]), ("Operator", s["operator"]), ("Started", _when(s["started"], s["started"], False)),
                 ("Ended", "not recorded (open or interrupted)" if s["ended"] is None
                  else _when(s["ended"], s["started"], False)), ("Folder", s["folder"]), ("Plan file", s["plan_path"])]
    rows += [("or_assist version", s["app_version"]), ("Case schema version", s["schema_version"]),
             ("Plan SHA-256", s["plan_sha256"] or "no plan recorded")]
    g = s.get("geometry")
    if isinstance(g, dict):
        rows += [("C-arm SID", f"{fmt(g.get('sid_mm'))} mm"),
                 ("Source to isocentre", f"{fmt(g.get('source_to_isocenter_mm'))} mm"),
                 ("Image size", " x ".join(str(v) for v in g.get("image_size") or []) + " px"),
                 ("Pixel spacing", " x ".join(fmt(v, 3) for v in g.get("pixel_spacing_mm") or []) + " mm")]
    rows.append(("Shots / captures / events", f"{s['n_shots']} / {s['n_captures']} / {s['n_events']}"))
    return "<h2>Case</h2>" + kv_table(rows)


def _plan_ids(plan) -> list[str]:
    if not isinstance(plan, dict):
        return []
    return [str(i.get("id")) for i in plan.get("implants") or [] if isinstance(i, dict) and i.get("id")]


def _plan_section(plan) -> str:
    if not isinstance(plan, dict):
        return "<h2>Plan</h2><p>No plan was recorded with this case.</p>"
    rows = []
    for imp in plan.get("implants") or []:
        entry, apex = np.asarray(imp.get("entry_lps_mm"), float), np.asarray(imp.get("apex_lps_mm"), float)
        length = float(np.linalg.norm(apex - entry)) if entry.shape == apex.shape == (3,) else None
        rows.append([imp.get("id"), imp.get("side"), imp.get("level") or "-", imp.get("item"),
                     ", ".join(fmt(v) for v in entry), ", ".join(fmt(v) for v in apex), fmt(length)])
    return ("<h2>Plan</h2>" + table(["Implant", "Side", "Level", "Size", "Entry (LPS mm)", "Apex (LPS mm)",
                                     "Length (mm)"], rows))


def _stats_section(st: dict) -> str:
    rows = [("Shots", st["shots"]), ("Registered", st["registered"]), ("Succeeded", st["succeeded"]),
            ("Success rate", "-" if st["success_rate"] is None else f"{100 * st['success_rate']:.0f} %"),
            ("Median registration time", "-" if st["median_seconds"] is None else f"{st['median_seconds']:.2f} s"),
            ("Median similarity (successful)", fmt(st["median_similarity"], 3) + (f" ({st['metric']})" if st["metric"] else "")),
            ("Median estimated error at the implant (successful)",
             "-" if st.get("median_estimated_error_mm") is None else f"{st['median_estimated_error_mm']:.1f} mm")]
    rows += [(f"Failed: {reason}", n) for reason, n in sorted(st["failure_reasons"].items())]
    return "<h2>Registration</h2>" + kv_table(rows)


def _final_section(final: dict, start, pseudonymise) -> str:
    if not final:
        return "<h2>Final deviations</h2><p>No captures were recorded.</p>"
    rows = []
    for implant, e in final.items():
        c2, d2 = e["2d"] or (None, {})
        c3, d3 = e["3d"] or (None, {})
        last = c3 if c3 is not None and (c2 is None or c3["id"] > c2["id"]) else c2
        rows.append([implant,
                     "-" if c2 is None else f"#{c2['id']} {_when(c2['timestamp'], start, True)}",
                     fmt(d2.get("tip_offset_mm")), fmt(d2.get("angle_deg")),
                     "-" if c3 is None else f"#{c3['id']} {_when(c3['timestamp'], start, True)}",
                     fmt(d3.get("apex_deviation_mm")), fmt(d3.get("angle_deg")),
                     {"html": "-" if last is None else cue_html(last["cue"])}])
    return ("<h2>Final deviations per implant</h2>" +
            table(["Implant", "2-D from capture", "Tip offset (mm)", "Angle (deg)", "3-D from capture",
                   "Apex deviation (mm)", "Angle (deg)", "Last cue"], rows))


def _numbers(devs: dict) -> str:
    parts = []
    for name, dev in devs.items():
        if isinstance(dev, dict):
            parts.append(f"<h4>{escape(name)}</h4>" + kv_table(list(dev.items())))
        else:
            parts.append(kv_table([(name, fmt(dev))]))
    return "".join(parts) or "<p>No deviation numbers.</p>"


# --------------------------------------------------------------------------- build


def build_report(case_dir, out_path=None, *, mask_text: bool = True, pseudonymise: bool = False,
                 postop=None) -> Path:
    """Write the case's HTML report (module doc).

    Parameters
    ----------
    case_dir : path-like
        The case folder.
    out_path : path-like, optional
        The HTML file; default ``case_dir/report.html``. Written atomically, mode 0o600.
    mask_text : bool
        Fill burnt-in text black in every image (default).
    pseudonymise : bool
        No names, paths or dates in the report.
    postop : path-like, optional
        The case's ``or_assist.postop_evaluation/1`` (``or-assist evaluate --out``): its
        apex deviation and angle per implant are shown beside the two-view 3-D numbers
        that predicted them.

    Returns
    -------
    Path
        The HTML file.

    Raises
    ------
    InputError
        The case cannot be opened (bad, half-written or newer case); missing or damaged
        images do not stop the report: each is listed under "Problems" in its place.
    """
    out = Path(case_dir) / REPORT_NAME if out_path is None else Path(out_path)
    if out.exists() and out.is_dir():
        raise InputError("is a folder; give the HTML file to write", str(out))
    postop_numbers = None if postop is None else read_postop_numbers(postop)
    with CaseLog.open(case_dir, readonly=True) as log:
        summary = log.case_summary()
        shots, captures, events = log.shots(), log.captures(), log.events()
        meta = pseudonymise_summary(summary) if pseudonymise else summary
        folder = str(log.case_dir)
        problems = list(meta["problems"])

        def hide(text: str) -> str:
            return text.replace(folder, "<case>") if pseudonymise else text

        start = summary["started"]
        by_id = {s["id"]: s for s in shots}
        timeline = []
        for s in shots:
            reg = s["registration"]
            status = ("no registration" if not isinstance(reg, dict) else
                      "registered" + (f" in {reg['seconds']:.2f} s" if isinstance(reg.get("seconds"), (int, float)) else "")
                      + (f", estimated error {reg['estimated_error_mm']:.1f} mm"
                         if isinstance(reg.get("estimated_error_mm"), (int, float)) else "")
                      if reg.get("success") is True else f"NOT registered: {reg.get('reason') or 'not confident'}")
            thumb = _img_html(log, s["raw_path"], s["raw_sha256"], [s["raw_mask_path"]], mask_text,
                              _THUMB_WIDTH_PX, f"shot {s['id']} frame", problems, hide)
            text = f"Shot {s['id']}: implant {s['implant_id'] or '-'}, view {s['view'] or '-'}, {status}"
            d3 = s["guidance"].get("deviation_3d")
            if isinstance(d3, dict):
                u = d3.get("uncertainty") or {}
                other = (d3.get("shots") or [{}])[0]
                text += (f"; 3-D with shot {other.get('shot_id', '?')} ({other.get('view', '?')}): apex deviation "
                         f"{plus_minus(d3.get('apex_deviation_mm'), u.get('apex_deviation_mm'))} mm, angle "
                         f"{plus_minus(d3.get('angle_deg'), u.get('angle_deg'))} deg")
            timeline.append((s["timestamp"], 0, s["id"], "shot", escape(text) + thumb))
        for c in captures:
            text = f"Capture {c['id']} (shot {c['shot_id']}): implant {c['implant_id'] or '-'}, view {c['view'] or '-'} "
            timeline.append((c["timestamp"], 1, c["id"], "capture", escape(text) + cue_html(c["cue"])))
        for e in events:
            d = e["detail"]
            if pseudonymise and isinstance(d, dict):
                d = {k: v for k, v in d.items() if k != "text"}
            detail = "" if not d else ", ".join(f"{k}: {fmt(v)}" for k, v in d.items()) if isinstance(d, dict) else fmt(d)
            timeline.append((e["timestamp"], 2, e["id"], escape(e["kind"]), escape(detail)))
        timeline.sort(key=lambda r: r[:3])
        tl_rows = [[_when(t, start, pseudonymise), {"html": kind if kind in ("shot", "capture") else f"event: {kind}"},
                    {"html": body}] for t, _, _, kind, body in timeline]

        cap_parts = []
        for c in captures:
            shot = by_id.get(c["shot_id"], {})
            img = _img_html(log, c["overlay_path"], c["overlay_sha256"],
                            [c["overlay_mask_path"], shot.get("pre_mask_path"), shot.get("raw_mask_path")],
                            mask_text, _MAX_WIDTH_PX, f"capture {c['id']} overlay", problems, hide)
            cap_parts.append(f'<section class="capture"><h3>Capture {c["id"]}: implant {escape(str(c["implant_id"] or "-"))}'
                             f', view {escape(str(c["view"] or "-"))}, {escape(_when(c["timestamp"], start, pseudonymise))}'
                             f'</h3>{img}<p>Cue: {cue_html(c["cue"])}</p>{_numbers(c["deviations"])}</section>')

        body = ["<h1>or_assist case report</h1>", _case_section(meta, pseudonymise)]
        if problems:
            body.append('<h2>Problems</h2><ul class="problems">' +
                        "".join(f"<li>{escape(hide(p))}</li>" for p in problems) + "</ul>")
        body += [_plan_section(summary["plan"] if not pseudonymise else meta["plan"]),
                 _stats_section(registration_stats(shots)), _final_section(final_deviations(captures), start, pseudonymise),
                 three_d_section(latest_3d(shots, captures), _plan_ids(summary["plan"]), postop_numbers),
                 "<h2>Timeline</h2>" + (table(["Time", "What", "Details"], tl_rows) if tl_rows else "<p>Nothing recorded.</p>"),
                 "<h2>Captures</h2>" + ("".join(cap_parts) or "<p>No captures were recorded.</p>"),
                 f'<p class="foot">Images: {"burnt-in text masked" if mask_text else "NOT masked"}. '
                 f'<span id="img-status">images loading</span></p>']
    title = f"Case report {meta['case_id']}"
    html = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{CSS}</style><script>{SCRIPT}</script></head>"
            f'<body data-images-loaded="0" data-images-failed="0">{"".join(body)}</body></html>\n')
    with write_errors(out, "the report"):
        out.parent.mkdir(parents=True, exist_ok=True)
        write_file_atomic(out, html.encode("utf-8"))
        os.chmod(out, FILE_MODE)
    return out
