"""A replay in which the C-arm's view changes and nobody selects it: how long each shot takes.

The demo scenario on the built-in sample pelvis (implant L1: lateral -> inlet -> outlet ->
lateral -> inlet -> outlet, the first lateral 6 deg off the planned tilt) is run headless
without its scripted selection, so the pipeline only knows the view it registered last.
Per shot: the view it ended at, whether it registered, the registration's whole time
(every attempt), the attempts, and the time the printed line says.

Run from the repository root (a few minutes on 2 cores)::

    python benchmarks/replay_views.py --shots 3 --no-budget
    python benchmarks/replay_views.py --scores      # only the view scores of every held shot

``--no-budget`` lifts the registration's 3 s time budget, so that on a loaded machine the
figures show how many attempts a shot needs rather than where the budget ran out.
``--scores`` prints :func:`~or_assist.live.views.view_scores` of each held shot of the demo
(implants L1 and L2) against the implant's three planned views, and its time.

Measured (2 shared cores, load average about 10, ``--shots 3 --no-budget``), per shot
(view, process s, printed s, attempts)::

    before (main d791d06)          after (branch replay)
    1 lateral  24.1  23.3  1       1 lateral  40.3  39.8  1
    2 inlet   292.8  31.2  3+      2 inlet    33.0  31.5  1
    3 outlet  248.8  27.8  3+      3 outlet   21.9  21.5  1
    processing 565.7 s in all      processing 95.2 s in all

Before, the inlet and outlet were first registered from the view registered last (tracking,
then its planned pose) and the printed time was the last attempt's; after, the shown view
is tried first and the printed time is the whole. (Shot 1's two figures differ by the
machine's load, not the method: one attempt each.)
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
    parser.add_argument("--scores", action="store_true", help="only the view scores of every held shot")
    args = parser.parse_args(argv)
    if args.scores:
        return scores()
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


def scores() -> int:
    """View scores of every held shot of the demo (implants L1 and L2)."""
    from or_assist.core.vocabulary import SIJF_VIEWS
    from or_assist.live.views import view_scores
    from or_assist.video.preprocess.shot import preprocess_shot

    case = open_demo_case(realtime=False, loop=False, implants=["L1", "L2"], case_log=False)
    pipe, source = case.pipeline, case.source
    print(f"{'implant':7} {'shown':8} " + " ".join(f"{v:>8}" for v in SIJF_VIEWS) + "  seconds")
    with source:
        while (frame := source.read()) is not None:
            event = pipe.feed(frame)
            if event is None:
                continue
            step = case.script(frame)
            pre = preprocess_shot(event.image, pipe.geometry, pipe.preprocess_settings)
            t0 = time.perf_counter()
            poses = [pipe.planned_pose(step["implant"], v) for v in SIJF_VIEWS]
            got = view_scores(pipe.renderer, pipe.geometry, event.image, poses, polarity=pre.polarity)
            print(f"{step['implant']:7} {step['view']:8} " + " ".join(f"{x:8.2f}" for x in got)
                  + f"  {time.perf_counter() - t0:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
