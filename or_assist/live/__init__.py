"""The OR pipeline: shot -> registration -> guidance -> case log, with typed results.

Modules::

    hint      The C-arm positioning hint: how to move from the current view to the planned one.
    pipeline  The live pipeline of the OR display, without Qt: shots -> preprocess -> register -> guidance -> case log.
    result    The result of one shot in the live pipeline: everything the display shows for it.
    run       Setting up a real live case and running a live case without a window.
    starts    Where the live pipeline starts a shot's registration, and the registration attempts.
    run_control  How a headless run is driven: the newest exposure waiting for registration, and stopping on a signal.
    virtual_view  The OR display's virtual view: the planned view with the plan's outlines.
    views     Which planned view a new shot shows: a quick 2-D comparison before the registration.
    two_view  Live two-view 3-D deviation: each new shot paired with an earlier one of the same implant.
    time_budget  Registrations that keep running out of their time budget, said in plain words.
    wording   Plain words for the OR display: technical reasons -> what to do, and the one headline.

Names are exported lazily (``lazy_loader``, as in scikit-image): importing this package
imports no submodule, ``from or_assist.live import name`` imports only the one that
defines ``name``.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=['hint', 'pipeline', 'result', 'run', 'run_control', 'starts', 'time_budget', 'two_view', 'views', 'virtual_view', 'wording'],
    submod_attrs={
        'hint': ['HINT_MIN_DEG', 'APPROX_STEP_DEG', 'APPROX_PREFIX', 'APPROX_MAX_DEG', 'positioning_hint',
                 'approximate_positioning_hint', 'planned_angles_text'],
        'pipeline': ['LivePipeline'],
        'result': ['ShotResult'],
        'run': ['LiveCase', 'open_real_case', 'run_headless'],
        'run_control': ['STOP_SIGNALS', 'NewestExposure', 'SignalStop'],
        'starts': ['TRACK_WITHIN_DEG', 'HEADER_START', 'ShotSetup', 'shot_setup', 'header_start', 'shot_starts',
                   'register_from', 'register_shot'],
        'time_budget': ['LAST_SHOTS', 'RAN_OUT_OF', 'BudgetWatch', 'ran_out_of_time'],
        'virtual_view': ['planned_view_image'],
        'views': ['VIEW_SCORE_SIZE_PX', 'VIEW_SCORE_STEP_MM', 'VIEW_MARGIN', 'view_scores', 'rank_starts'],
        'two_view': ['MOVED_SIGMAS', 'MOVED_FLOOR_MM', 'MOVE_CHECK_MAX_MM', 'KEPT_SHOTS', 'PinView', 'TwoViewResult',
                     'TwoViewTracker', 'view_uncertainty', 'views_angle_deg', 'tip_seen', 'pin_moved_mm'],
        'wording': ['HEADLINES', 'plain_reason', 'plain_warning', 'landmark_words', 'headline'],
    },
)
