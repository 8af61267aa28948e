"""Registrations that keep running out of their time budget (or_assist.live.time_budget):
the notice comes once, only from what happened in the case, and says what to do."""

from __future__ import annotations

import numpy as np

from or_assist.core.pose import Pose
from or_assist.live.result import ShotResult
from or_assist.live.time_budget import LAST_SHOTS, RAN_OUT_OF, BudgetWatch, ran_out_of_time
from or_assist.register.pipeline import RegistrationResult

OUT_OF_TIME = "not registered: the time budget of 3.0 s ran out in the compass128 stage"


def _shot(number: int, outcome: str) -> ShotResult:
    """A shot that registered (``'ok'``), was refused for its similarity (``'refused'``),
    ran out of time in its first attempt (``'time'``) or in a later one (``'time-later'``),
    or whose image could not be used (``'unusable'``)."""
    r = ShotResult(number, None, np.zeros((8, 8), np.uint8), number, 0.0, "L1", "lateral", None, "bone-dark")
    if outcome == "unusable":
        return r
    ok = outcome == "ok"
    stopped = "compass128" if outcome == "time" else None
    r.registration = RegistrationResult(Pose.identity(), ok, 0.8 if ok else 0.2, "gc", 1.0,
                                        None if ok else (OUT_OF_TIME if stopped else "not confident"),
                                        stopped_in=stopped)
    r.attempts = [{"success": ok, "stopped_in": stopped}]
    if outcome == "time-later":
        r.attempts.append({"success": False, "stopped_in": "cma64"})
    return r


def test_which_shots_ran_out_of_time():
    assert [ran_out_of_time(_shot(1, o)) for o in ("ok", "refused", "time", "time-later", "unusable")] == \
        [False, False, True, True, False]


def test_the_notice_comes_once_when_most_recent_shots_ran_out():
    assert (RAN_OUT_OF, LAST_SHOTS) == (2, 3)
    watch = BudgetWatch()
    # one shot out of time among registered ones: a hard shot, not the computer
    assert [watch.update(_shot(k, o), 3.0) for k, o in enumerate(("time", "ok", "refused", "ok"), 1)] == [None] * 4
    assert watch.notice is None
    # an unusable image says nothing about time and does not push the earlier ones out
    assert watch.update(_shot(5, "time"), 3.0) is None
    assert watch.update(_shot(6, "unusable"), 3.0) is None
    notice = watch.update(_shot(7, "time-later"), 3.0)
    assert notice is not None and notice == watch.notice
    assert notice.startswith("2 of the last 3 shots ran out of the registration's 3 s time budget")
    assert "--time-budget-s 0" in notice
    # said once; it stays for the case
    assert watch.update(_shot(8, "time"), 3.0) is None and watch.notice == notice


def test_no_notice_without_a_budget():
    watch = BudgetWatch()
    assert [watch.update(_shot(k, "time"), None) for k in (1, 2, 3)] == [None, None, None]
    assert watch.notice is None
