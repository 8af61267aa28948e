"""The virtual view library of a plan: building it, its data model, npz/PNG files.

Modules::

    build  The virtual view library: a plan's named C-arm views, rendered with its implants.
    io     Saving, loading and checking the virtual view library; the ``or-assist views`` command.
    model  Types of the virtual view library: its entries, the library, and the nearest-view search.
    png    Printable PNGs of the virtual view library: the view with the planned outlines.

Names are exported lazily (``lazy_loader``, as in scikit-image): importing this package
imports no submodule, ``from or_assist.render.views import name`` imports only the one that
defines ``name``.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=['build', 'io', 'model', 'png'],
    submod_attrs={
        'build': ['build_view_library'],
        'io': ['LIBRARY_FILE', 'PNG_DIR', 'save_view_library', 'load_view_library', 'check_view_library', 'ViewFiles', 'build_view_files'],
        'model': ['VIEW_LIBRARY_SCHEMA', 'DEFAULT_SIZE_PX', 'DEFAULT_NEIGHBOURHOOD_SIZE_PX', 'DEFAULT_NEIGHBOURHOOD_DEG', 'MAX_NEIGHBOURHOOD_OFFSET_DEG', 'LIBRARY_VIEW_KINDS', 'ViewEntry', 'ViewLibrary', 'ViewMatch', 'downsample_for_size', 'neighbourhood_offsets', 'check_neighbourhood_deg', 'nearest_views'],
        'png': ['PLAN_COLOUR_BGR', 'OTHER_COLOUR_BGR', 'PNG_MIN_SIDE_PX', 'png_scale', 'image_to_png_px', 'render_view_png'],
    },
)
