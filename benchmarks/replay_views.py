"""A replay in which the C-arm's view changes and nobody selects it: how long each shot takes.

The demo scenario on the built-in sample pelvis (implant L1: lateral -> inlet -> outlet ->
lateral -> inlet -> outlet, the first lateral 6 deg off the planned tilt) is run headless
without its scripted selection, so the pipeline only knows the view it registered last.
Per shot: the view it ended at, whether it registered, the registration's whole time
(every attempt), the attempts, and the time the printed line says.

Run from the repository root (a few minutes on 2 cores)::

    python benchmarks/replay_views.py --shots 3 --no-budget

``--no-budget`` lifts the registration's 3 s time budget, so that on a loaded machine the
figures show how many attempts a shot needs rather than where the budget ran out.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from or_assist.live.run import run_headless  # noqa: E402
from or_assist.register.settings import RegistrationSettings  # noqa: E402
from or_assist.sim.scenario.demo_case import open_demo_case  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, default=3, help="shots to run (default 3)")
    parser.add_argument("--no-budget", action="store_true", help="no registration time budget")
    args = parser.parse_args(argv)
    settings = RegistrationSettings(time_budget_s=None) if args.no_budget else None
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        case = open_demo_case(realtime=False, loop=False, implants=["L1"], cases_root=tmp,
                              registration_settings=settings)
        case.script = None  # nobody selects the view
        pipe = case.pipeline
        process = pipe.process

        def timed(*a, **k):
            t0 = time.perf_counter()
            result = process(*a, **k)
            rows.append((result, time.perf_counter() - t0))
            return result

        pipe.process = timed
        summary = run_headless(case, max_shots=args.shots, log=print)
        case.close()
    print(f"\n{'shot':>4} {'view':8} {'reg.':5} {'process s':>9} {'register s':>10} {'attempts':>8} "
          f"{'printed s':>9}")
    for result, seconds in rows:
        m = re.search(r"(\d+\.\d) s[,)]", result.summary())
        attempts = getattr(result, "attempts", None)
        n = len(attempts) if attempts else "?"
        reg = result.seconds.get("register", float("nan"))
        print(f"{result.number:>4} {result.view:8} {'yes' if result.registered else 'no':5} {seconds:9.1f} "
              f"{reg:10.1f} {n!s:>8} {m.group(1) if m else '?':>9}")
    total = sum(s for _, s in rows)
    print(f"{summary['frames']} frames, {len(summary['shots'])} shots, {summary['registered']} registered; "
          f"processing {total:.1f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
