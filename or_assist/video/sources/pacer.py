"""Real-time pacing of replayed frames (video files, image folders, the simulator)."""

from __future__ import annotations

import time

__all__ = ["Pacer"]


class Pacer:
    """Real-time pacing for replayed frames: frame *n* is due ``n / fps`` after the first.

    When the caller falls more than two frame periods behind, the schedule restarts at
    the current frame instead of bursting to catch up.
    """

    def __init__(self, fps: float):
        self.period_s = 1.0 / float(fps)
        self._anchor: float | None = None
        self._n = 0

    def reset(self) -> None:
        """Forget the schedule: the next frame is delivered at once."""
        self._anchor = None

    def wait(self) -> None:
        """Sleep until the next frame is due."""
        now = time.monotonic()
        if self._anchor is None:
            self._anchor, self._n = now, 0
            return
        self._n += 1
        due = self._anchor + self._n * self.period_s
        if now > due + 2 * self.period_s:
            self._anchor, self._n = now, 0
            return
        if due > now:
            time.sleep(due - now)
