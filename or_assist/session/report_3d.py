"""The case report's two-view 3-D section: the latest 3-D deviation per implant beside the post-op CT's numbers.

The live pipeline records with every shot (and capture) the two-view 3-D deviation of the
guide pin when it has one (:mod:`or_assist.live.two_view`); :func:`latest_3d` picks each
implant's latest, :func:`read_postop_numbers` reads what ``or-assist evaluate`` measured
on the placed implant (the metric the 3-D numbers predict), and :func:`three_d_section`
writes the report's table.
"""

from __future__ import annotations

from html import escape

from or_assist.core import jsonio
from or_assist.errors import InputError
from or_assist.session.report_html import cue_html, fmt, table

__all__ = ["latest_3d", "read_postop_numbers", "plus_minus", "three_d_section"]


def latest_3d(shots: list[dict], captures: list[dict] = ()) -> dict[str, dict]:
    """Per implant id, the latest two-view 3-D deviation recorded, or the latest reason for none.

    Shots carry their deviations since schema version 3 (``guidance``); captures always
    did. The newer of a pair's two shots is the shot row itself; its ``shot_id`` is
    filled from the row.

    Returns
    -------
    dict
        ``{implant_id: {"deviation": deviation_3d dict or None, "shot_id": the shot it was
        recorded with or None, "timestamp": float or None, "refused": the latest reason
        for no 3-D deviation (None once one was recorded after it)}}``.
    """
    rows = [(s["timestamp"], 0, s["id"], s["id"], s.get("implant_id"), s.get("guidance") or {}) for s in shots]
    rows += [(c["timestamp"], 1, c["id"], c["shot_id"], c.get("implant_id"), c.get("deviations") or {})
             for c in captures]
    out: dict[str, dict] = {}
    for ts, _, _, shot_id, implant, devs in sorted(rows, key=lambda r: r[:3]):
        entry = out.setdefault(implant or "(none)", {"deviation": None, "shot_id": None, "timestamp": None,
                                                     "refused": None})
        d3 = devs.get("deviation_3d")
        if isinstance(d3, dict):
            d3 = dict(d3)
            pair = [dict(x) if isinstance(x, dict) else {} for x in (d3.get("shots") or [])]
            if pair and pair[-1].get("shot_id") is None:
                pair[-1]["shot_id"] = shot_id
            d3["shots"] = pair
            entry.update(deviation=d3, shot_id=shot_id, timestamp=ts, refused=None)
        elif isinstance(devs.get("deviation_3d_refused"), str):
            entry["refused"] = devs["deviation_3d_refused"]
    return out


def read_postop_numbers(path) -> dict[str, dict]:
    """Per implant id, what the post-operative CT evaluation measured on the placed implant.

    Parameters
    ----------
    path : path-like
        An ``or_assist.postop_evaluation/1`` file (``or-assist evaluate --out``).

    Returns
    -------
    dict
        ``{implant_id: {"found": bool, "apex_deviation_mm": float or None, "angle_deg": float or None}}``.

    Raises
    ------
    InputError
        Missing or unreadable file, another schema, or an ``implants`` list that is not
        one (naming the file and the field).
    """
    doc = jsonio.read_json(path, "or_assist.postop_evaluation/1")
    implants = doc.get("implants")
    if not isinstance(implants, list):
        raise InputError("expected a list of implants", f"{path}: implants")
    out = {}
    for k, imp in enumerate(implants):
        if not isinstance(imp, dict) or not isinstance(imp.get("id"), str):
            raise InputError("expected an object with an implant id", f"{path}: implants[{k}]")
        nums = {name: float(imp[name]) if isinstance(imp.get(name), (int, float)) else None
                for name in ("apex_deviation_mm", "angle_deg")}
        out[imp["id"]] = {"found": imp.get("found") is True, **nums}
    return out


def plus_minus(value, sigma) -> str:
    """``value +- sigma`` to one decimal (``-`` without a value)."""
    if not isinstance(value, (int, float)):
        return "-"
    return f"{value:.1f}" + (f" +- {sigma:.1f}" if isinstance(sigma, (int, float)) else "")


def three_d_section(latest: dict, implant_ids: list[str], postop: dict | None) -> str:
    """The report's section of the latest two-view 3-D deviation per implant (:func:`latest_3d`),
    beside the post-op evaluation's numbers (:func:`read_postop_numbers`) when given."""
    ids = list(implant_ids) + [i for i in latest if i not in implant_ids]
    rows = []
    for implant in ids:
        e = latest.get(implant) or {}
        d3 = e.get("deviation")
        post = (postop or {}).get(implant)
        if postop is None:
            measured = ["not given (report --postop)"] * 2
        elif post is None or not post["found"]:
            measured = ["not found in the post-op CT" if post is not None else "not in the evaluation", "-"]
        else:
            measured = [fmt(post["apex_deviation_mm"], 1), fmt(post["angle_deg"], 1)]
        if not isinstance(d3, dict):
            why = ("no shot of this implant was recorded" if implant not in latest else
                   e.get("refused") or "none was recorded")
            rows.append([implant, f"no 3-D deviation: {why}", "-", "-", "-", "-"] + measured + ["-"])
            continue
        u = d3.get("uncertainty") or {}
        pair = d3.get("shots") or []
        shots = " + ".join(f"#{p.get('shot_id', '?')} {p.get('view', '?')}" for p in pair) or "-"
        notes = list(d3.get("warnings") or [])
        cue = d3.get("cue")
        rows.append([implant, shots, plus_minus(d3.get("apex_deviation_mm"), u.get("apex_deviation_mm")),
                     plus_minus(d3.get("angle_deg"), u.get("angle_deg")), fmt(d3.get("predicted_apex_deviation_mm"), 1),
                     fmt(d3.get("remaining_depth_mm"), 1)] + measured +
                    [{"html": (cue_html(cue) if isinstance(cue, dict) else "") +
                      "".join(f'<div class="warning">{escape(str(w))}</div>' for w in notes) or "-"}])
    intro = ("<p>The latest two-view 3-D deviation of each implant: the guide pin triangulated from two "
             "registered shots at least 20 deg apart (inlet + outlet) with the tip seen in both, whose two tips "
             "agree (the pin did not move between them; a lateral, which sees the pin end-on, cannot check that); "
             "+- is one sigma (registration, pin localisation, and how well the two tips agree). "
             "Apex deviation (pin tip to planned apex) and angle (pin to planned axis) are the study's metrics: "
             "the post-operative CT evaluation (<code>or-assist evaluate</code>) measures them on the placed "
             "implant. &quot;At planned depth&quot; is the apex deviation the pin would give if advanced to the "
             "planned apex depth; &quot;remaining&quot; is the depth left to the planned apex.</p>")
    return ("<h2>Two-view 3-D deviation per implant (predicts the post-op evaluation)</h2>" + intro +
            table(["Implant", "From shots", "Apex deviation (mm)", "Angle (deg)", "Apex at planned depth (mm)",
                   "Remaining depth (mm)", "Post-op CT: apex deviation (mm)", "Post-op CT: angle (deg)",
                   "3-D cue and warnings"], rows))
