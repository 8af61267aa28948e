"""HTML pieces of the case report: stylesheet (screen and print), image-load script, tables.

Every text that reaches the page goes through :func:`html.escape` here or in
:mod:`or_assist.session.report`; a table cell given as ``{"html": ...}`` is inserted as
is (it was built from escaped parts).

The script marks each ``<img>`` with ``data-state="loaded"`` or ``"error"`` from its
``onload``/``onerror`` and counts them on ``<body>`` (``data-images-loaded``,
``data-images-failed``) and in ``#img-status``, so a headless browser's DOM dump shows
whether every image was displayed.
"""

from __future__ import annotations

import json
import math
from html import escape

__all__ = ["CSS", "SCRIPT", "fmt", "table", "kv_table", "cue_html"]

CSS = """
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 2em; color: #111; max-width: 1400px; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #999; margin-top: 1.6em; } h4 { margin: .6em 0 .2em; }
table { border-collapse: collapse; margin: .4em 0; }
th, td { border: 1px solid #bbb; padding: 3px 7px; text-align: left; vertical-align: top; font-size: .92em; }
th { background: #eee; }
figure { margin: .4em 0; } figcaption { font-size: .8em; color: #555; }
img { max-width: 100%; height: auto; display: block; }
.cue { display: inline-block; padding: 1px 8px; border-radius: 3px; font-weight: bold; color: #fff; background: #777; }
.cue.green { background: #2e8b3e; } .cue.amber { background: #d08a00; } .cue.red { background: #c62828; }
.warning { color: #c62828; font-weight: bold; }
.missing { border: 2px dashed #c62828; color: #c62828; padding: .5em; margin: .3em 0; }
.problems li { color: #c62828; }
.capture { border-top: 1px solid #ccc; padding-top: .5em; }
.foot { color: #555; font-size: .85em; margin-top: 2em; }
@media print {
  body { margin: 0; max-width: none; font-size: 10pt; }
  .capture { page-break-inside: avoid; break-inside: avoid; }
  h2 { page-break-after: avoid; break-after: avoid; }
  tr, figure { page-break-inside: avoid; break-inside: avoid; }
  img { max-height: 16cm; width: auto; }
}
"""

SCRIPT = """
function imgStatus() {
  var b = document.body, s = document.getElementById('img-status');
  if (!b || !s) return;
  var failed = Number(b.dataset.imagesFailed || 0);
  s.textContent = (b.dataset.imagesLoaded || 0) + ' of ' + document.images.length + ' images loaded' +
                  (failed ? ', ' + failed + ' failed' : '');
}
function imgDone(img, state) {
  img.dataset.state = state;
  var key = state === 'loaded' ? 'imagesLoaded' : 'imagesFailed';
  document.body.dataset[key] = String(Number(document.body.dataset[key] || 0) + 1);
  imgStatus();
}
window.addEventListener('load', imgStatus);
"""


def fmt(value, digits: int = 2) -> str:
    """Plain text of a value: numbers rounded to ``digits``, None as ``-``, lists and dicts compact."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}" if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(fmt(v, digits) for v in value) + "]"
    if isinstance(value, dict):
        return json.dumps(value, default=str)
    return str(value)


def _cell(value, tag: str) -> str:
    if isinstance(value, dict) and "html" in value:
        return f"<{tag}>{value['html']}</{tag}>"
    return f"<{tag}>{escape(value if isinstance(value, str) else fmt(value))}</{tag}>"


def table(headers, rows) -> str:
    """An HTML table; cells are escaped text, numbers, or ``{"html": ...}``."""
    head = "<tr>" + "".join(_cell(h, "th") for h in headers) + "</tr>"
    return "<table>" + head + "".join("<tr>" + "".join(_cell(c, "td") for c in r) + "</tr>" for r in rows) + "</table>"


def kv_table(rows) -> str:
    """A two-column table of ``(name, value)`` pairs."""
    return "<table>" + "".join(f"<tr>{_cell(k, 'th')}{_cell(v, 'td')}</tr>" for k, v in rows) + "</table>"


def cue_html(cue) -> str:
    """A recorded cue (its dict) as HTML: the level badge, its lines and its warnings."""
    if not isinstance(cue, dict):
        return '<span class="cue none">no cue</span>'
    level = str(cue.get("level") or cue.get("colour") or "none")
    lines = cue.get("lines") or ([cue["text"]] if cue.get("text") else [])
    warn = cue.get("warnings") or []
    return (f'<span class="cue {escape(level)}">{escape(level)}</span> ' + escape(" / ".join(map(str, lines))) +
            "".join(f'<div class="warning">{escape(str(w))}</div>' for w in warn))
