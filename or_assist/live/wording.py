"""Plain words for the OR display: technical reasons -> what to do, and the one headline.

The registration, the preprocessing and the guidance explain themselves in technical
terms ("not confident: final gc 0.154 is below the threshold 0.400"); the case log keeps
those. A surgeon at 2 m needs what happened and what to do next ("The image does not
match the CT: take another shot."). :func:`plain_reason` makes that translation,
:func:`plain_warning` does the same for safety warnings, and :func:`headline` picks the
one state the display shows in colour, so that a safety warning is never shown beside
green and nothing unconfident is shown as confident.

No Qt: the wording is tested on its own and the headless run may use it too.
"""

from __future__ import annotations

import re

__all__ = ["HEADLINES", "plain_reason", "plain_warning", "landmark_words", "headline"]

#: Headline text and colour level of each display state (colour levels as the cues':
#: 'green', 'amber', 'red'; 'none' for neutral grey). Short: one line at 44 px beside
#: the video on a 1080p screen.
HEADLINES = {
    "waiting": ("NO SHOT YET", "none"),
    "registering": ("NEW SHOT...", "none"),
    "changing": ("NEW IMAGE...", "none"),
    "not_registered": ("NOT REGISTERED", "red"),
    "safety": ("SAFETY WARNING", "red"),
    "no_pin": ("NO PIN FOUND", "none"),
    "green": ("ON PLAN", "green"),
    "amber": ("CLOSE TO PLAN", "amber"),
    "red": ("OFF PLAN", "red"),
}

_TAKE_ANOTHER = "take another shot"

# (pattern on the technical text, plain words); the first that matches wins.
_REASONS = (
    (r"below the threshold|not confident: final", "The image does not match the CT: " + _TAKE_ANOTHER + "."),
    (r"fits more than one pose|independent starts ended",
     "The image fits the CT in more than one position: " + _TAKE_ANOTHER + " with more bone in view."),
    (r"estimated error .* above the limit",
     "The match with the CT is not precise enough at the implant: " + _TAKE_ANOTHER + "."),
    (r"outside the capture range",
     "The C-arm is too far from the planned view: move it to the planned view and " + _TAKE_ANOTHER + "."),
    (r"time budget .* ran out", "Matching to the CT took too long: " + _TAKE_ANOTHER + "."),
    (r"no X-ray field|black or nearly", "No X-ray image (the image is black): " + _TAKE_ANOTHER + "."),
    (r"saturated", "The image is overexposed (white): lower the dose and " + _TAKE_ANOTHER + "."),
    (r"no contrast|is uniform", "The image has no contrast: " + _TAKE_ANOTHER + "."),
    (r"too few usable pixels|no usable pixels", "Too little of the image can be used: " + _TAKE_ANOTHER + "."),
    (r"colour image", "The video shows a colour image, not an X-ray: check the video input."),
    (r"does not match the geometry|image size",
     "The video does not match the C-arm setup (image size): check the video input."),
    (r"planned axis is outside the field",
     "The planned path is outside the image: centre the C-arm on it and " + _TAKE_ANOTHER + "."),
    (r"no guide pin|no pin detected", "No guide pin found near the planned path."),
    (r"tip at the edge", "The pin tip is at the edge of the image: centre the C-arm on it."),
)
_DEFAULT_REASON = "Not registered: " + _TAKE_ANOTHER + "."

_LANDMARK = re.compile(r"^(s\d)_foramen(?:_(left|right))?$")


def plain_reason(technical: str | None, default: str | None = None) -> str:
    """Plain words for a technical reason (registration, preprocessing or guidance).

    Parameters
    ----------
    technical : str or None
        E.g. ``RegistrationResult.reason`` or ``ShotResult.message``.
    default : str, optional
        What an unknown reason gives (default ``"Not registered: take another shot."``:
        pass another for a shot that did register).

    Returns
    -------
    str
        One sentence for the OR: what happened and what to do. An unknown reason gives
        ``default`` (the case log keeps the technical one).
    """
    text = "" if technical is None else str(technical)
    for pattern, words in _REASONS:
        if re.search(pattern, text, re.IGNORECASE):
            return words
    return _DEFAULT_REASON if default is None else default


def landmark_words(name: str) -> str:
    """``'s1_foramen_left'`` -> ``'left S1 foramen'``, ``'spinal_canal'`` -> ``'spinal canal'``."""
    m = _LANDMARK.match(str(name))
    if m:
        side = f"{m.group(2)} " if m.group(2) else ""
        return f"{side}{m.group(1).upper()} foramen"
    return str(name).replace("_", " ")


_WARNING = re.compile(r"^WARNING: (projected )?pin path (crosses|enters|within ([\d.]+) mm of) (\S+)(.*)$")


def plain_warning(technical: str) -> str:
    """A safety warning of :mod:`or_assist.guidance.cues` in plain words.

    ``"WARNING: projected pin path crosses s1_foramen_left (this view)"`` ->
    ``"Pin path crosses the left S1 foramen (this view)"``; anything else is returned
    without its ``WARNING:`` prefix.
    """
    text = str(technical)
    m = _WARNING.match(text)
    if not m:
        return re.sub(r"^WARNING:\s*", "", text)
    verb = m.group(2)
    verb = f"passes {m.group(3)} mm from" if verb.startswith("within") else verb
    return f"Pin path {verb} the {landmark_words(m.group(4))}{m.group(5)}"


def headline(result, *, shot_pending: bool = False, image_changing: bool = False) -> tuple[str, str]:
    """The one state the display shows in colour for what is on screen.

    One state wins, in this order: a new image or shot that has no result yet (grey), no
    result at all (grey), not registered (red), a safety warning of the shot's or the
    two-view cue (red, whatever the cue level), the two-view 3-D cue's level when the shot
    has one, no pin (grey), the shot's cue level (green / amber / red).

    Parameters
    ----------
    result : ShotResult or None
        The result of the shot on screen (None when it has none yet).
    shot_pending : bool
        A new shot is on screen and its result has not come yet.
    image_changing : bool
        The video no longer shows a held shot.

    Returns
    -------
    (str, str)
        The headline text and its colour level ('green', 'amber', 'red' or 'none').
    """
    if image_changing:
        return HEADLINES["changing"]
    if shot_pending:
        return HEADLINES["registering"]
    if result is None:
        return HEADLINES["waiting"]
    if not result.registered:
        return HEADLINES["not_registered"]
    cue = result.cue
    cue3 = getattr(result, "cue_3d", None)
    if any(c is not None and c.warnings for c in (cue, cue3)):
        return HEADLINES["safety"]
    if cue3 is not None and cue3.level in ("green", "amber", "red"):
        return HEADLINES[cue3.level]   # the two-view cue judges the pin in 3-D: it wins over one view's
    if cue is None or cue.level not in ("green", "amber", "red"):
        return HEADLINES["no_pin"]
    return HEADLINES[cue.level]
