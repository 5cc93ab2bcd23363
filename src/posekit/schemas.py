"""Keypoint schemas as data: names, 0-based skeletons, flip pairs, OKS sigmas, conversions.

A schema is a frozen description of a keypoint layout. Conversions between schemas go by keypoint
name: a keypoint present in both is copied; a keypoint the target defines as ``derived`` (for
example OpenPose's neck, the midpoint of the shoulders) is computed from its sources when all of
them are present; everything else is missing (score 0, coordinates NaN).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "BLAZEPOSE_33",
    "COCO_17",
    "MPII_14",
    "OPENPOSE_18",
    "SCHEMAS",
    "KeypointSchema",
    "convert_keypoints",
    "get_schema",
]


@dataclass(frozen=True)
class KeypointSchema:
    """A keypoint layout.

    ``skeleton`` holds 0-based index pairs; ``flip_pairs`` holds left/right index pairs;
    ``sigmas`` are the per-keypoint OKS constants (``None`` when the layout has none);
    ``derived`` maps a keypoint name to the names whose mean defines it when converting from a
    schema that lacks it.
    """

    name: str
    keypoints: tuple[str, ...]
    skeleton: tuple[tuple[int, int], ...]
    flip_pairs: tuple[tuple[int, int], ...] = ()
    sigmas: tuple[float, ...] | None = None
    derived: dict[str, tuple[str, ...]] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        k = len(self.keypoints)
        if len(set(self.keypoints)) != k:
            raise ValueError(f"schema {self.name!r}: keypoint names must be unique")
        for a, b in (*self.skeleton, *self.flip_pairs):
            if not (0 <= a < k and 0 <= b < k):
                raise ValueError(f"schema {self.name!r}: pair ({a}, {b}) is outside 0..{k - 1}")
        if self.sigmas is not None and len(self.sigmas) != k:
            raise ValueError(f"schema {self.name!r}: {len(self.sigmas)} sigmas for {k} keypoints")

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoints)

    def index(self, name: str) -> int:
        """Index of keypoint ``name``; raises ``KeyError`` naming the valid names."""
        try:
            return self.keypoints.index(name)
        except ValueError:
            raise KeyError(f"{name!r} is not a keypoint of {self.name}; expected one of {self.keypoints}") from None

    def flip_permutation(self) -> NDArray[np.intp]:
        """Index permutation that swaps left and right keypoints (for horizontal flips)."""
        perm = np.arange(self.num_keypoints)
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm

    def sigmas_array(self) -> NDArray[np.float64]:
        if self.sigmas is None:
            raise ValueError(f"schema {self.name!r} has no OKS sigmas; give them explicitly")
        return np.asarray(self.sigmas, dtype=np.float64)


def _pairs_by_name(names: tuple[str, ...], pairs: list[tuple[str, str]]) -> tuple[tuple[int, int], ...]:
    return tuple((names.index(a), names.index(b)) for a, b in pairs)


def _left_right_pairs(names: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    out = []
    for i, n in enumerate(names):
        if n.startswith("left_"):
            j = names.index("right_" + n[5:])
            out.append((i, j))
    return tuple(out)


_COCO_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip

COCO_17 = KeypointSchema(
    name="coco17",
    keypoints=_COCO_NAMES,
    skeleton=_pairs_by_name(_COCO_NAMES, [
        ("left_ankle", "left_knee"), ("left_knee", "left_hip"), ("right_ankle", "right_knee"),
        ("right_knee", "right_hip"), ("left_hip", "right_hip"), ("left_shoulder", "left_hip"),
        ("right_shoulder", "right_hip"), ("left_shoulder", "right_shoulder"),
        ("left_shoulder", "left_elbow"), ("right_shoulder", "right_elbow"), ("left_elbow", "left_wrist"),
        ("right_elbow", "right_wrist"), ("left_eye", "right_eye"), ("nose", "left_eye"),
        ("nose", "right_eye"), ("left_eye", "left_ear"), ("right_eye", "right_ear"),
        ("left_ear", "left_shoulder"), ("right_ear", "right_shoulder"),
    ]),
    flip_pairs=_left_right_pairs(_COCO_NAMES),
    # COCO keypoint evaluation constants (cocoeval.py), nose .. ankles.
    sigmas=(.026, .025, .025, .035, .035, .079, .079, .072, .072, .062, .062,
            .107, .107, .087, .087, .089, .089),
)  # fmt: skip

_OPENPOSE_NAMES = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)  # fmt: skip

# The 19 limbs of the OpenPose COCO-18 model, in the order its networks list them.
OPENPOSE_18 = KeypointSchema(
    name="openpose18",
    keypoints=_OPENPOSE_NAMES,
    skeleton=((1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11),
              (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17), (2, 16), (5, 17)),
    flip_pairs=_left_right_pairs(_OPENPOSE_NAMES),
    sigmas=tuple(
        0.079 if n == "neck" else COCO_17.sigmas[_COCO_NAMES.index(n)]  # type: ignore[index]
        for n in _OPENPOSE_NAMES
    ),
    derived={"neck": ("left_shoulder", "right_shoulder")},
)  # fmt: skip

_BLAZEPOSE_NAMES = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel",
    "right_heel", "left_foot_index", "right_foot_index",
)  # fmt: skip


def _blaze_flip_pairs(names: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    out = []
    for i, n in enumerate(names):
        if "left" in n:
            out.append((i, names.index(n.replace("left", "right"))))
    return tuple(out)


BLAZEPOSE_33 = KeypointSchema(
    name="blazepose33",
    keypoints=_BLAZEPOSE_NAMES,
    skeleton=((0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10), (11, 12),
              (11, 13), (13, 15), (15, 17), (15, 19), (15, 21), (17, 19), (12, 14), (14, 16),
              (16, 18), (16, 20), (16, 22), (18, 20), (11, 23), (12, 24), (23, 24), (23, 25),
              (24, 26), (25, 27), (26, 28), (27, 29), (28, 30), (29, 31), (30, 32), (27, 31),
              (28, 32)),
    flip_pairs=_blaze_flip_pairs(_BLAZEPOSE_NAMES),
)  # fmt: skip

_MPII_NAMES = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
    "upper_neck", "head_top",
)  # fmt: skip


# The Bonn / PoseTrack-CVPR2017 layout (MPII's 16 joints without pelvis and thorax). Its skeleton is
# the one in the Bonn file, made 0-based. No OKS sigmas: this layout is scored with PCKh.
MPII_14 = KeypointSchema(
    name="mpii14",
    keypoints=_MPII_NAMES,
    skeleton=((0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 12), (12, 9), (9, 10),
              (10, 11), (8, 2), (9, 3), (12, 13)),
    flip_pairs=_left_right_pairs(_MPII_NAMES),
    derived={"upper_neck": ("left_shoulder", "right_shoulder")},
)  # fmt: skip

SCHEMAS: dict[str, KeypointSchema] = {s.name: s for s in (COCO_17, OPENPOSE_18, BLAZEPOSE_33, MPII_14)}

# The whole-body layouts (COCO-WholeBody-133, Sapiens-308) are long lists kept in their own module,
# which builds on KeypointSchema above.
from posekit.schemas_wholebody import WHOLEBODY_SCHEMAS  # noqa: E402

SCHEMAS.update({s.name: s for s in WHOLEBODY_SCHEMAS})


def get_schema(schema: str | KeypointSchema) -> KeypointSchema:
    """Look a schema up by name (or pass one through)."""
    if isinstance(schema, KeypointSchema):
        return schema
    try:
        return SCHEMAS[schema]
    except KeyError:
        raise KeyError(f"unknown keypoint schema {schema!r}; expected one of {sorted(SCHEMAS)}") from None


def convert_keypoints(
    keypoints: NDArray[np.floating],
    scores: NDArray[np.floating],
    src: str | KeypointSchema,
    dst: str | KeypointSchema,
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Convert ``(N, K_src, 2)`` keypoints and ``(N, K_src)`` scores from ``src`` to ``dst``.

    Missing target keypoints get score 0 and NaN coordinates. A derived keypoint is the mean of its
    sources, with the smallest of their scores, where all of them are present (score > 0).
    """
    src_s, dst_s = get_schema(src), get_schema(dst)
    kp = np.asarray(keypoints, dtype=np.float32)
    sc = np.asarray(scores, dtype=np.float32)
    n = kp.shape[0]
    out_kp = np.full((n, dst_s.num_keypoints, 2), np.nan, dtype=np.float32)
    out_sc = np.zeros((n, dst_s.num_keypoints), dtype=np.float32)
    for j, name in enumerate(dst_s.keypoints):
        if name in src_s.keypoints:
            i = src_s.keypoints.index(name)
            out_kp[:, j] = kp[:, i]
            out_sc[:, j] = sc[:, i]
        elif name in dst_s.derived and all(s in src_s.keypoints for s in dst_s.derived[name]):
            idx = [src_s.keypoints.index(s) for s in dst_s.derived[name]]
            present = np.all(sc[:, idx] > 0, axis=1)
            out_kp[present, j] = kp[present][:, idx].mean(axis=1)
            out_sc[present, j] = sc[present][:, idx].min(axis=1)
    return out_kp, out_sc
