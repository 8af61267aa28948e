"""Live two-view 3-D deviation on the headless demo: the case log's numbers against the simulated truth.

Runs the demo case (``or-assist demo --headless``: the sample pelvis through the shot
simulator at 1920 x 1080, the demo script of lateral, inlet, outlet per implant with a
deviating pin, then again corrected and at the apex) through the live pipeline, then
reads the case log and prints, per shot, the simulated truth (the pin tip's distance to
the planned apex and the angle to the planned axis) beside the 3-D apex deviation and
angle the shot recorded (with their 1-sigma and the two shots), or why it has none. The
report (``report.html`` in the case folder) is written too.

The registration runs without its time budget by default (``--time-budget`` sets one):
on a small, busy machine the demo's 3 s budget runs out before any shot registers.

Run from the repository root::

    python benchmarks/two_view_demo.py                  # all three implants, about 20 s a shot
    python benchmarks/two_view_demo.py --implants L1    # one implant (6 shots)
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--implants", default=None, help="comma-separated implant ids (default: all)")
    parser.add_argument("--time-budget", type=float, default=None, help="registration time budget, s (default none)")
    parser.add_argument("--cases", default=None, help="cases folder (default: a temporary one)")
    args = parser.parse_args(argv)

    from or_assist.live.run import run_headless
    from or_assist.register.settings import RegistrationSettings
    from or_assist.session.caselog import CaseLog
    from or_assist.session.report import build_report
    from or_assist.sim.sample import demo_pin
    from or_assist.sim.scenario.demo_case import demo_app_scenario, open_demo_case

    implants = args.implants.split(",") if args.implants else None
    t0 = time.perf_counter()
    case = open_demo_case(realtime=False, loop=False, implants=implants,
                          cases_root=args.cases or tempfile.mkdtemp(prefix="or_assist_two_view_"),
                          registration_settings=RegistrationSettings(time_budget_s=args.time_budget))
    plan = case.pipeline.plan
    labels = []
    script = case.script

    def recording_script(frame):
        step = script(frame)
        if step is not None:
            labels.append(step["label"])
        return step

    case.script = recording_script
    steps = {s.label: s for s in demo_app_scenario(plan, implants=implants).steps}
    try:
        summary = run_headless(case, log=print)
    finally:
        case.close()
    print(f"{len(summary['shots'])} shots, {summary['registered']} registered in {time.perf_counter() - t0:.0f} s; "
          f"case log {summary['case_dir']}")
    with CaseLog.open(summary["case_dir"], readonly=True) as log:
        rows = log.shots()
    print("\nshot implant view    | truth: apex, angle | recorded 3-D: apex +- 1 sigma, angle +- 1 sigma (shots)")
    errors = []
    for row, label in zip(rows, labels):
        step = steps[label]
        imp = plan.implant(step.implant)
        pin = demo_pin(imp, step.pin.advance_fraction, step.pin.offset_mm, step.pin.tilt_deg)
        true_apex = float(np.linalg.norm(pin.tip_lps_mm - imp.apex_lps_mm))
        head = (f"{row['id']:4d} {row['implant_id']:7s} {row['view']:7s} | {true_apex:5.1f} mm {step.pin.tilt_deg:4.1f} deg "
                "| ")
        d3 = row["guidance"].get("deviation_3d")
        if not isinstance(d3, dict):
            print(head + f"none: {row['guidance'].get('deviation_3d_refused')}")
            continue
        u = d3["uncertainty"]
        pair = " + ".join(str(s.get("shot_id") or row["id"]) for s in d3["shots"])
        print(head + f"{d3['apex_deviation_mm']:5.1f} +- {u['apex_deviation_mm']:.1f} mm, "
                     f"{d3['angle_deg']:4.1f} +- {u['angle_deg']:.1f} deg (shots {pair})")
        errors.append((d3["apex_deviation_mm"] - true_apex, u["apex_deviation_mm"],
                       d3["angle_deg"] - step.pin.tilt_deg, u["angle_deg"]))
    if errors:
        e = np.asarray(errors)
        print(f"\n{len(e)} shots with a 3-D deviation: apex error max {np.abs(e[:, 0]).max():.2f} mm "
              f"(within 2 sigma: {int(np.sum(np.abs(e[:, 0]) <= 2 * e[:, 1]))}/{len(e)}), angle error max "
              f"{np.abs(e[:, 2]).max():.2f} deg (within 2 sigma: {int(np.sum(np.abs(e[:, 2]) <= 2 * e[:, 3]))}/{len(e)})")
    print(f"report: {build_report(summary['case_dir'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
