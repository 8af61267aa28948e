"""The printable plan sheet: the virtual views and the implant table the surgeon takes to the OR.

:func:`write_plan_sheet` writes two files from a plan, its rendered view library
(:func:`or_assist.render.views.build.build_view_library`) and its check results:

* ``<stem>.png``: one picture, a header (CT, plan hash, C-arm profile, date), one row
  per implant with its lateral, inlet, outlet and axis views (the printable view PNGs of
  :mod:`or_assist.render.views.png`, planned outlines drawn), and the implant table;
* ``<stem>.html``: the same as a self-contained page (images embedded as PNG data
  URLs) with a print stylesheet (A4, one implant's views per block, no page break
  inside a block): the implant table (id, side, level, item, diameter, length, roll,
  entry, apex), the plan checks (pass/fail coloured) and each view with its C-arm
  angles. Print it or save it as PDF from any browser.
"""

from __future__ import annotations

import base64
import html
import os
import time
from pathlib import Path

import cv2
import numpy as np

from or_assist.core.outputs import write_bytes_atomic, write_image
from or_assist.core.vocabulary import IMPLANT_VIEW_KINDS
from or_assist.errors import InputError

__all__ = ["SHEET_VIEW_KINDS", "implant_rows", "render_plan_sheet_png", "plan_sheet_html", "write_plan_sheet"]

SHEET_VIEW_KINDS = IMPLANT_VIEW_KINDS
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_TILE_PX = 360


def implant_rows(plan) -> list[dict]:
    """The implant table: one dict per implant (strings, as printed)."""
    rows = []
    for imp in plan.implants:
        rows.append({
            "id": imp.id, "side": imp.side, "level": imp.level or "-", "item": imp.item.id,
            "diameter": f"{imp.item.inscribed_diameter_mm:g} mm", "length": f"{imp.item.length_mm:g} mm",
            "roll": f"{imp.roll_deg:g} deg",
            "entry": ", ".join(f"{v:.1f}" for v in imp.entry_lps_mm),
            "apex": ", ".join(f"{v:.1f}" for v in imp.apex_lps_mm),
        })
    return rows


def _views_by_implant(library) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for i, e in enumerate(library.entries):
        if e.is_named and e.kind in SHEET_VIEW_KINDS:
            out.setdefault(e.implant_id, {}).setdefault(e.kind, i)
    return out


def _header_lines(plan, library, profile: str | None, checks) -> list[str]:
    failed = sum(1 for r in checks if not r.passed)
    ct = plan.ct_path.name if plan.ct_path is not None else "(no CT file)"
    return [
        f"SIJF virtual plan  -  CT {ct}  (voxel SHA-256 {str(plan.ct_sha256)[:12]}...)",
        f"plan SHA-256 {library.plan_sha256[:12]}...  C-arm {profile or 'geometry'}: SID "
        f"{library.geometry.sid_mm:g} mm, source-isocentre {library.geometry.source_to_isocenter_mm:g} mm, "
        f"patient {library.patient_position}",
        f"{len(plan.implants)} implants; plan checks: " + ("all pass" if checks and not failed else
                                                           f"{failed} FAIL" if checks else "not run")
        + f"  -  printed {time.strftime('%Y-%m-%d %H:%M')}",
    ]


def _text_band(lines: list[str], width: int, scale: float = 0.6, colour=(0, 0, 0)) -> np.ndarray:
    line_h = int(28 * scale / 0.6)
    band = np.full((line_h * len(lines) + line_h // 2, width, 3), 255, np.uint8)
    for k, line in enumerate(lines):
        cv2.putText(band, line, (10, line_h * (k + 1)), _FONT, scale, colour, 1, cv2.LINE_AA)
    return band


def render_plan_sheet_png(plan, library, checks=(), *, profile: str | None = None) -> np.ndarray:
    """The plan sheet as one BGR picture (module doc).

    Returns
    -------
    (H, W, 3) uint8 ndarray
        BGR, ``W = 4 * 360`` px.
    """
    from or_assist.render.views.png import render_view_png

    width = len(SHEET_VIEW_KINDS) * _TILE_PX
    blocks = [_text_band(_header_lines(plan, library, profile, list(checks)), width, 0.6)]
    for imp_id, kinds in _views_by_implant(library).items():
        tiles = []
        for kind in SHEET_VIEW_KINDS:
            if kind in kinds:
                img = render_view_png(library, kinds[kind], min_side_px=512)
                h = int(round(img.shape[0] * _TILE_PX / img.shape[1]))
                tiles.append(cv2.resize(img, (_TILE_PX, h), interpolation=cv2.INTER_AREA))
            else:
                tiles.append(np.full((_TILE_PX, _TILE_PX, 3), 255, np.uint8))
        h = max(t.shape[0] for t in tiles)
        tiles = [np.vstack([t, np.full((h - t.shape[0], _TILE_PX, 3), 255, np.uint8)]) for t in tiles]
        blocks.append(_text_band([f"implant {imp_id}"], width, 0.7))
        blocks.append(np.hstack(tiles))
    header = "id    side   level  item    diam   length  roll     entry (LPS mm)          apex (LPS mm)"
    lines = [header] + [f"{r['id']:<5} {r['side']:<6} {r['level']:<6} {r['item']:<7} {r['diameter']:<6} "
                        f"{r['length']:<7} {r['roll']:<8} {r['entry']:<23} {r['apex']}" for r in implant_rows(plan)]
    failed = [r for r in checks if not r.passed]
    lines += [f"FAIL {r.implant} {r.check}: {r.message}" for r in failed]
    blocks.append(_text_band(lines, width, 0.5))
    return np.vstack(blocks)


def _png_data_url(img: np.ndarray) -> str:
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise InputError("cannot encode a view as PNG", "plan sheet")
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def plan_sheet_html(plan, library, checks=(), *, profile: str | None = None) -> str:
    """The plan sheet as a self-contained printable HTML page (module doc)."""
    from or_assist.render.views.png import render_view_png

    esc = html.escape
    checks = list(checks)
    head = "".join(f"<p>{esc(line)}</p>" for line in _header_lines(plan, library, profile, checks))
    cols = ("id", "side", "level", "item", "diameter", "length", "roll", "entry", "apex")
    table = "<table><tr>" + "".join(f"<th>{c}{' (LPS mm)' if c in ('entry', 'apex') else ''}</th>" for c in cols)
    table += "</tr>" + "".join("<tr>" + "".join(f"<td>{esc(r[c])}</td>" for c in cols) + "</tr>"
                               for r in implant_rows(plan)) + "</table>"
    crow = "".join(
        f"<tr class='{'skip' if r.skipped else ('pass' if r.passed else 'fail')}'><td>{esc(r.implant or '-')}</td>"
        f"<td>{esc(r.check)}</td><td>{'SKIP' if r.skipped else ('PASS' if r.passed else 'FAIL')}</td>"
        f"<td>{'-' if r.value is None else f'{r.value:.1f} {esc(r.unit)}'}</td><td>{esc(r.message)}</td></tr>"
        for r in checks)
    check_table = ("<table><tr><th>implant</th><th>check</th><th>result</th><th>value</th><th>message</th></tr>"
                   + crow + "</table>") if checks else "<p>plan checks not run</p>"
    blocks = []
    for imp_id, kinds in _views_by_implant(library).items():
        figs = []
        for kind in SHEET_VIEW_KINDS:
            if kind not in kinds:
                continue
            i = kinds[kind]
            e = library.entries[i]
            src = _png_data_url(render_view_png(library, i, min_side_px=512))
            figs.append(f"<figure><img src='{src}' alt='{esc(e.name)}'><figcaption>{esc(e.name)}: "
                        f"C-arm {esc(e.angles.radiographer_text())}</figcaption></figure>")
        blocks.append(f"<section class='implant'><h2>Implant {esc(imp_id)}</h2>{''.join(figs)}</section>")
    style = """
body { font-family: sans-serif; font-size: 10pt; margin: 1em; }
table { border-collapse: collapse; margin: 0.5em 0; } th, td { border: 1px solid #888; padding: 2px 6px; }
tr.pass td { background: #c8f0c8; } tr.fail td { background: #ffb0b0; font-weight: bold; }
tr.skip td { background: #e8e8e8; }
figure { display: inline-block; width: 24%; margin: 0 0.5% 0.5em 0; vertical-align: top; }
figure img { width: 100%; } figcaption { font-size: 8pt; }
section.implant { break-inside: avoid; page-break-inside: avoid; }
@page { size: A4 landscape; margin: 10mm; }
@media print { body { margin: 0; } }
"""
    title = f"SIJF plan - {plan.ct_path.name if plan.ct_path else 'plan'}"
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
            f"<style>{style}</style></head><body><h1>{esc(title)}</h1>{head}<h2>Implants</h2>{table}"
            f"<h2>Plan checks</h2>{check_table}{''.join(blocks)}</body></html>\n")


def write_plan_sheet(plan, library, checks=(), out_dir: str | os.PathLike = ".", *, stem: str = "plan_sheet",
                     profile: str | None = None) -> dict[str, Path]:
    """Write ``<out_dir>/<stem>.png`` and ``<out_dir>/<stem>.html`` (module doc).

    Parameters
    ----------
    plan : Plan
    library : ViewLibrary
        Built from this plan.
    checks : sequence of CheckResult
    out_dir : path-like
    stem : str
    profile : str, optional
        C-arm profile name, printed in the header.

    Returns
    -------
    dict
        ``{"png": Path, "html": Path}``.

    Raises
    ------
    InputError
        A library of another plan, or a file that cannot be written.
    """
    if library.plan_sha256 != plan.sha256():
        raise InputError("the view library was built from another version of the plan; rebuild it", "library")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the folder ({exc.strerror})", str(out)) from None
    png, page = out / f"{stem}.png", out / f"{stem}.html"
    write_image(png, render_plan_sheet_png(plan, library, checks, profile=profile), what="the plan sheet")
    write_bytes_atomic(page, plan_sheet_html(plan, library, checks, profile=profile).encode("utf-8"),
                       what="the plan sheet page")
    return {"png": png, "html": page}
