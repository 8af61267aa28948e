"""Registrations that keep running out of their time budget, said in plain words.

Each registration has a time budget (3 s by default, set on a 2-core machine;
``--time-budget-s``). On a slower computer many shots end NOT REGISTERED only because the
budget ran out; each shot's reason says that much, but not that the computer is the
cause, nor what to do. :class:`BudgetWatch` follows a case's shots: once
:data:`RAN_OUT_OF` of the last :data:`LAST_SHOTS` ended NOT REGISTERED with the budget run
out, it says so once (the shot's headless line, the display's case line for the rest of the
case, and a ``time_budget`` event in the case log), with what to do. It judges only what
happened in this case, never a prediction.
"""

from __future__ import annotations

import threading
from collections import deque

__all__ = ["LAST_SHOTS", "RAN_OUT_OF", "BudgetWatch", "ran_out_of_time"]

#: Shots looked back on.
LAST_SHOTS = 3
#: Of them, this many NOT REGISTERED for time make the notice: one may be a hard shot.
RAN_OUT_OF = 2


def ran_out_of_time(result) -> bool:
    """Whether a shot (:class:`~or_assist.live.result.ShotResult`) ended NOT REGISTERED with
    the time budget run out in one of its attempts."""
    if result.registered or result.registration is None:
        return False
    return result.registration.stopped_in is not None or any(a.get("stopped_in") for a in result.attempts)


class BudgetWatch:
    """Counts a case's shots that ran out of the registration's time budget (module doc).

    Attributes
    ----------
    notice : str or None
        The notice once it was given (it stays for the case), else None.
    """

    def __init__(self):
        self._recent: deque = deque(maxlen=LAST_SHOTS)
        self._lock = threading.Lock()
        self.notice: str | None = None

    def update(self, result, budget_s: float | None) -> str | None:
        """Record a registered or refused shot.

        Parameters
        ----------
        result : ShotResult
            After its registration.
        budget_s : float or None
            The registration's time budget (None: no limit, nothing can run out).

        Returns
        -------
        str or None
            The notice, the one time it becomes due; else None.
        """
        if result.registration is None:   # the image could not be used: says nothing about time
            return None
        with self._lock:
            self._recent.append(ran_out_of_time(result))
            n = sum(self._recent)
            if self.notice is not None or n < RAN_OUT_OF or budget_s is None:
                return None
            self.notice = (f"{n} of the last {len(self._recent)} shots ran out of the registration's "
                           f"{budget_s:g} s time budget: this computer may be too slow for it. Run once with "
                           f"--time-budget-s 0 (no limit) to see how long a registration takes here, then set "
                           f"--time-budget-s above that")
            return self.notice
