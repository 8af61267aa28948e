"""The OR pipeline: shot -> registration -> guidance -> case log, with typed results.

Modules::

    pipeline  The live pipeline of the OR display, without Qt: shots -> preprocess -> register -> guidance -> case log.
    run       Setting up a real live case and running a live case without a window.

Names are exported lazily (``lazy_loader``, as in scikit-image): importing this package
imports no submodule, ``from or_assist.live import name`` imports only the one that
defines ``name``.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=['pipeline', 'run'],
    submod_attrs={
        'pipeline': ['VIEWS', 'HINT_MIN_DEG', 'ShotResult', 'LivePipeline', 'positioning_hint'],
        'run': ['LiveCase', 'open_real_case', 'run_headless'],
    },
)
