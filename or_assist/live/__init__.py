"""The OR pipeline: shot -> registration -> guidance -> case log, with typed results.

Modules::

    hint      The C-arm positioning hint: how to move from the registered view to the planned one.
    pipeline  The live pipeline of the OR display, without Qt: shots -> preprocess -> register -> guidance -> case log.
    result    The result of one shot in the live pipeline: everything the display shows for it.
    run       Setting up a real live case and running a live case without a window.
    wording   Plain words for the OR display: technical reasons -> what to do, and the one headline.

Names are exported lazily (``lazy_loader``, as in scikit-image): importing this package
imports no submodule, ``from or_assist.live import name`` imports only the one that
defines ``name``.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=['hint', 'pipeline', 'result', 'run', 'wording'],
    submod_attrs={
        'hint': ['HINT_MIN_DEG', 'positioning_hint'],
        'pipeline': ['LivePipeline'],
        'result': ['ShotResult'],
        'run': ['LiveCase', 'open_real_case', 'run_headless'],
        'wording': ['HEADLINES', 'plain_reason', 'plain_warning', 'landmark_words', 'headline'],
    },
)
