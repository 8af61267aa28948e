"""The analytic phantom pelvis CT (constructive solid geometry) and its landmarks.

Modules::

    anatomy  Analytic landmarks and clinically placed implant targets of the synthetic pelvis.
    build    Voxelising the synthetic pelvis: paints the implicit shapes into HU and label volumes.
    csg      Implicit shapes for the synthetic pelvis: signed distances, smooth unions, bounding boxes.
    make     The built-in sample data: a deterministic synthetic pelvis CT with analytic anatomy.
    pelvis   Hip bones, femora and sacroiliac joints of the synthetic pelvis (LPS mm).
    soft     Soft tissues of the synthetic pelvis: body outline, fat, muscles, bowel, bladder, gas.
    spine    Sacrum, L5 and L4 of the synthetic pelvis, as implicit shapes (LPS mm).

Names are exported lazily (``lazy_loader``, as in scikit-image): importing this package
imports no submodule, ``from or_assist.sim.phantom import name`` imports only the one that
defines ``name``.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=['anatomy', 'build', 'csg', 'make', 'pelvis', 'soft', 'spine'],
    submod_attrs={
        'anatomy': ['IMPLANT_CIRCUMRADIUS_MM', 'IMPLANT_PLAN', 'implant_targets', 'landmarks', 'surface_point', 'closest_point_on_segment', 'canal_distance_mm', 'implant_clearance_mm', 'MIN_CLEARANCE_MM', 'MIN_SACRAL_PURCHASE_MM'],
        'build': ['LABELS', 'EXTENT_LO_MM', 'EXTENT_HI_MM', 'HU', 'grid_axes', 'sacrum', 'shapes', 'paint_phantom'],
        'csg': ['BIG', 'GridCtx', 'PointCtx', 'Shape', 'Ellipsoid', 'Capsule', 'RoundedCylinder', 'HalfSpace', 'Func', 'Plate', 'Offset', 'Union', 'Intersect', 'Subtract', 'evaluate', 'frame_from_axis', 'ellipse_sdf_2d'],
        'make': ['PHANTOM_SPACING_MM', 'PhantomVolume', 'make_phantom', 'phantom_landmarks', 'phantom_implant_targets', 'sample_ct_path', 'generator_version', 'render_preview_png'],
        'pelvis': ['JOINT_GAP_MM', 'LIGAMENT_GAP_MM', 'HIP_CENTRE_MM', 'FEMORAL_HEAD_RADIUS_MM', 'SIJoint', 'si_joint', 'hip_bone', 'femur', 'hip_joint_space', 'ILIUM_POINTS'],
        'soft': ['BACK_Y_MM', 'body_outline', 'inner_body', 'visceral_cavity', 'muscles', 'mesenteric_fat', 'rectum', 'gas_pockets', 'bladder'],
        'spine': ['SACRAL_SLOPE_DEG', 'SacralCurve', 'SACRUM', 'sacral_curve', 'sacrum_raw', 'sacral_canal', 'sacral_foramina', 'foramen_axis', 'lumbar_vertebra', 'lumbar_discs', 's1_endplate_centre', 'LUMBAR'],
    },
)
