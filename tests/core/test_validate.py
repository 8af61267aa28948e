"""core.validate (parameter checks) and core.vocabulary (shared choices): the helpers, and
that every settings class and CLI option offering one of the choices uses the vocabulary."""

from __future__ import annotations

import argparse
import math
import re

import numpy as np
import pytest

from or_assist.core import vocabulary as vocab
from or_assist.core.geometry import CArmGeometry
from or_assist.core.pose import Pose
from or_assist.core.validate import (check_bool, check_choice, check_finite, check_integer, is_integer, check_number, check_positive, check_vector,
                                     is_finite_number)
from or_assist.errors import InputError

# ----------------------------------------------------------------------------- helpers


@pytest.mark.parametrize("value", [0, -3, 2.5, np.float32(1.5), np.int64(7), 1e300])
def test_is_finite_number_accepts_real_numbers(value):
    assert is_finite_number(value)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, np.float64("nan"), 10 ** 400, True, np.bool_(True),
                                   "1", None, [1.0], 1 + 0j])
def test_is_finite_number_refuses_the_rest(value):
    assert not is_finite_number(value)


def test_check_finite():
    assert check_finite(np.int32(3), "f") == 3.0 and isinstance(check_finite(3, "f"), float)
    with pytest.raises(InputError, match=r"^f: must be a finite number, got nan$"):
        check_finite(math.nan, "f")
    with pytest.raises(InputError, match=r"^roll_deg: must be a finite number of degrees, got '5'$"):
        check_finite("5", "roll_deg", "a finite number of degrees")


def test_check_number_bounds_and_messages():
    assert check_number(0.0, "x", 0.0, 1.2) == 0.0 and check_number(1.2, "x", 0.0, 1.2) == 1.2
    with pytest.raises(InputError, match=r"^x: must be a finite number >= 0 and <= 1\.2, got 1\.5$"):
        check_number(1.5, "x", 0.0, 1.2)
    with pytest.raises(InputError, match=r"^x: must be a finite number > 0, got 0\.0$"):
        check_number(0.0, "x", 0.0, lo_open=True)
    with pytest.raises(InputError, match=r"^x: must be a finite number <= 3 \(mm\), got 4$"):
        check_number(4, "x", hi=3.0, unit="mm")
    with pytest.raises(InputError, match=r"^spacing_mm: must be a number from 0\.5 to 4 mm, got inf$"):
        check_number(math.inf, "spacing_mm", 0.5, 4.0, expected="a number from 0.5 to 4 mm")


def test_check_positive():
    assert check_positive(2, "d") == 2.0
    assert check_positive(0, "d", allow_zero=True) == 0.0
    with pytest.raises(InputError, match=r"^step_mm: must be a finite number > 0 \(mm\), got 0$"):
        check_positive(0, "step_mm", "mm")
    with pytest.raises(InputError, match=r"^r: must be a finite number >= 0, got -1$"):
        check_positive(-1, "r", allow_zero=True)
    with pytest.raises(InputError, match=r"^d: must be a finite number > 0, got True$"):
        check_positive(True, "d")


def test_check_vector():
    src = [1, 2, 3]
    v = check_vector(src, 3, "p", unit="LPS mm")
    assert v.dtype == np.float64 and v.shape == (3,) and v.tolist() == [1.0, 2.0, 3.0]
    assert check_vector(np.array([[1.0, 2.0, 3.0]]), 3, "p").shape == (3,)  # flattened
    a = np.zeros(3)
    assert check_vector(a, 3, "p") is not a  # a copy the caller may freeze or change
    with pytest.raises(InputError, match=r"^p: must be 3 finite numbers \(LPS mm\), got \[1\.0, 2\.0\]$"):
        check_vector([1.0, 2.0], 3, "p", unit="LPS mm")
    with pytest.raises(InputError, match=r"^p: must be 3 finite numbers, got \[0, nan, 0\]$"):
        check_vector([0, math.nan, 0], 3, "p")
    with pytest.raises(InputError, match=r"^p: must be 3 finite numbers, got 'abc'$"):
        check_vector("abc", 3, "p")
    with pytest.raises(InputError, match=r"^p: must be 3 finite numbers, got \[1, \[2, 3\], 4\]$"):
        check_vector([1, [2, 3], 4], 3, "p")
    with pytest.raises(InputError, match=r"^beam: must be a finite non-zero 3-vector, got \[0, 0, 0\]$"):
        check_vector([0, 0, 0], 3, "beam", nonzero=True)
    with pytest.raises(InputError, match=r"^spread: must be 6 finite positive numbers, got"):
        check_vector([1, 1, 1, 1, 1, 0], 6, "spread", positive=True)
    with pytest.raises(InputError, match=r"^k: must be null or 5 numbers, got None$"):
        check_vector(None, 5, "k", expected="null or 5 numbers")


@pytest.mark.parametrize("value", [0, -3, 7, np.int64(5), np.uint8(200)])
def test_is_integer_accepts_python_and_numpy_integers(value):
    assert is_integer(value)


@pytest.mark.parametrize("value", [True, np.bool_(True), 1.0, np.float32(2), "3", None, [1]])
def test_is_integer_refuses_bools_floats_and_the_rest(value):
    assert not is_integer(value)


def test_check_integer_and_check_bool():
    assert check_integer(np.int16(4), "n", 1, 4) == 4 and type(check_integer(np.int16(4), "n", 1, 4)) is int
    for bad in (0, 5, 2.0, True, "2"):
        with pytest.raises(InputError, match=r"^n: must be an integer from 1 to 4, got"):
            check_integer(bad, "n", 1, 4)
    assert check_bool(np.bool_(False), "flag") is False
    for bad in (0, 1, "true", None):
        with pytest.raises(InputError, match=r"^flag: must be true or false, got"):
            check_bool(bad, "flag")


def test_check_choice():
    assert check_choice("prone", vocab.PATIENT_POSITIONS, "patient_position") == "prone"
    assert check_choice(None, ("circle", None), "collimation") is None
    with pytest.raises(InputError, match=r"^patient_position: must be one of prone, supine, got 'lateral'$"):
        check_choice("lateral", vocab.PATIENT_POSITIONS, "patient_position")
    with pytest.raises(InputError, match=r"^c: must be one of circle, None, got 3$"):
        check_choice(3, ("circle", None), "c")
    with pytest.raises(InputError, match=r"^polarity: must be one of"):
        check_choice(np.array(["auto"]), vocab.POLARITY_SETTINGS, "polarity")


# ----------------------------------------------------------------------------- vocabulary

def test_polarity_vocabularies_are_one_family():
    assert vocab.POLARITY_SETTINGS[:2] == vocab.POLARITIES and set(vocab.POLARITY_SETTINGS) - set(vocab.POLARITIES) \
        == {"auto"}
    assert vocab.DETECTED_POLARITIES[:2] == vocab.POLARITIES and set(vocab.DETECTED_POLARITIES) \
        - set(vocab.POLARITIES) == {"unknown"}
    assert set(vocab.SIJF_VIEWS) < set(vocab.IMPLANT_VIEW_KINDS) < set(vocab.VIEW_KINDS)


def test_module_level_names_are_the_vocabulary():
    from or_assist.calibration.solve import DISTORTION_MODELS
    from or_assist.cli.demo import DEMO_VIEWS
    from or_assist.core.carm import PATIENT_POSITIONS, VIEW_KINDS
    from or_assist.core.plan import IMPLANT_SIDES
    from or_assist.render.plan_live import LIVE_VIEW_KINDS
    from or_assist.render.plan_sheet import SHEET_VIEW_KINDS
    from or_assist.render.views.model import LIBRARY_VIEW_KINDS

    assert DISTORTION_MODELS is vocab.DISTORTION_MODELS
    assert DEMO_VIEWS is vocab.SIJF_VIEWS
    assert VIEW_KINDS is vocab.VIEW_KINDS and PATIENT_POSITIONS is vocab.PATIENT_POSITIONS
    assert IMPLANT_SIDES is vocab.SIDES
    assert LIVE_VIEW_KINDS is SHEET_VIEW_KINDS is LIBRARY_VIEW_KINDS is vocab.IMPLANT_VIEW_KINDS


def test_polarities_have_one_name_per_meaning():
    import or_assist.register as register
    import or_assist.video.preprocess as preprocess

    # what settings accept and what detection returns are two vocabulary names, not two POLARITIES
    assert "POLARITIES" not in register.__all__ and "POLARITIES" not in preprocess.__all__
    assert vocab.DETECTED_POLARITIES == (*vocab.POLARITIES, "unknown")


def _frame():
    return np.full((64, 64), 128, np.uint8)


def _geometry():
    return CArmGeometry((64, 64), 1000.0, (1.0, 1.0), (32.0, 32.0), 600.0)


def _settings_cases():
    from or_assist.core.carm import sijf_view_pose
    from or_assist.core.plan import ViewSpec
    from or_assist.guidance.pin import attenuation_from_frame
    from or_assist.register.shot import prepare_shot
    from or_assist.sim.scenario.model import ScenarioStep
    from or_assist.video.preprocess.shot import PreprocessSettings

    entry, apex = (0.0, 0.0, 0.0), (40.0, 0.0, 0.0)
    return [
        ("polarity", vocab.POLARITY_SETTINGS, lambda v: PreprocessSettings(polarity=v)),
        ("polarity", vocab.POLARITY_SETTINGS, lambda v: prepare_shot(_frame(), _geometry(), polarity=v)),
        ("polarity", vocab.POLARITIES, lambda v: attenuation_from_frame(_frame(), polarity=v)),
        ("kind", vocab.VIEW_KINDS, lambda v: sijf_view_pose(v, entry, apex, "left", 600.0)),
        ("side", vocab.SIDES, lambda v: sijf_view_pose("lateral", entry, apex, v, 600.0)),
        ("patient_position", vocab.PATIENT_POSITIONS,
         lambda v: sijf_view_pose("lateral", entry, apex, "left", 600.0, patient_position=v)),
        ("kind", vocab.VIEW_KINDS, lambda v: ViewSpec("v", v)),
        ("view", vocab.VIEW_KINDS, lambda v: ScenarioStep(implant="L1", view=v)),
    ]


@pytest.mark.parametrize("case", range(8))
def test_settings_refuse_a_bad_choice_listing_the_vocabulary(case):
    field, choices, make = _settings_cases()[case]
    with pytest.raises(InputError) as info:
        make("sideways")
    assert re.search(rf"\b{field}: must be one of {re.escape(', '.join(choices))}, got 'sideways'$",
                     str(info.value)), str(info.value)


def test_registrar_refuses_a_bad_polarity():
    from or_assist.register.pipeline import Registrar

    reg = Registrar.__new__(Registrar)  # the polarity is checked before anything the constructor sets up
    with pytest.raises(InputError, match=rf"^polarity: must be one of {', '.join(vocab.POLARITY_SETTINGS)}, "):
        reg._register(_frame(), Pose(np.eye(4)), "sideways", None, None, None)


def _cli_choices() -> dict[tuple[str, str], tuple]:
    from or_assist.cli import build_parser

    found = {}
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command, sub in action.choices.items():
                for opt in sub._actions:
                    if opt.choices is not None:
                        found[(command, opt.option_strings[0] if opt.option_strings else opt.dest)] = opt.choices
    return found


def test_cli_choices_come_from_the_vocabulary():
    found = _cli_choices()
    expected = {
        ("view-pose", "--view"): vocab.VIEW_KINDS,
        ("view-pose", "--patient-position"): vocab.PATIENT_POSITIONS,
        ("views", "--patient-position"): vocab.PATIENT_POSITIONS,
        ("calibrate", "--distortion"): vocab.DISTORTION_MODELS,
        ("register", "--polarity"): vocab.POLARITY_SETTINGS,
        ("pin", "--polarity"): vocab.POLARITY_SETTINGS,  # listed "auto" first, as it always was
    }
    for key, choices in expected.items():
        assert key in found, f"{key} lost its choices"
        assert set(found[key]) == set(choices), key
    named = [v for k, v in vars(vocab).items() if k.isupper() and isinstance(v, tuple)]
    for key, choices in found.items():  # any option with choices offers exactly one vocabulary
        assert any(set(choices) == set(v) for v in named), f"{key}: {choices} is not in core.vocabulary"
