"""The named choices shared by settings, file readers and the CLI.

One home for every vocabulary that more than one module checks against: a settings
class validates with ``check_choice(value, POLARITY_SETTINGS, "polarity")``
(:func:`or_assist.core.validate.check_choice`) and the CLI offers
``choices=POLARITY_SETTINGS``, so the two cannot drift apart. The spellings are part of
the file formats and the CLI and do not change.
"""

from __future__ import annotations

__all__ = [
    "POLARITIES",
    "POLARITY_SETTINGS",
    "DETECTED_POLARITIES",
    "VIEW_KINDS",
    "SIJF_VIEWS",
    "IMPLANT_VIEW_KINDS",
    "PATIENT_POSITIONS",
    "SIDES",
    "DISTORTION_MODELS",
]

# ----------------------------------------------------------------------------- polarity
POLARITIES = ("bone-dark", "bone-bright")
"""How bone appears in a shot: dark (the C-arm's usual video output) or bright."""

POLARITY_SETTINGS = POLARITIES + ("auto",)
"""What a polarity setting or ``--polarity`` accepts: a polarity, or ``auto`` to detect it."""

DETECTED_POLARITIES = POLARITIES + ("unknown",)
"""What polarity detection returns: a polarity, or ``unknown`` when the cues disagree."""

# ----------------------------------------------------------------------------- C-arm views
VIEW_KINDS = ("lateral", "inlet", "outlet", "ap", "axis")
"""Every named C-arm view (plan files, ``view-pose --view``)."""

SIJF_VIEWS = ("lateral", "inlet", "outlet")
"""The three fluoroscopic views of SI-joint fusion, in the order the live display cycles them."""

IMPLANT_VIEW_KINDS = ("lateral", "inlet", "outlet", "axis")
"""The views rendered for every implant (view library, live planner views, plan sheet)."""

PATIENT_POSITIONS = ("prone", "supine")
"""How the patient lies on the table."""

SIDES = ("left", "right")
"""The patient's side of an implant or a C-arm approach."""

# ----------------------------------------------------------------------------- calibration
DISTORTION_MODELS = ("auto", "none", "radial", "full")
"""Lens-distortion models a C-arm calibration can fit (``auto`` picks by evidence)."""
