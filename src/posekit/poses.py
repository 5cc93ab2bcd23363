"""``Poses``: the typed result for one image."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from posekit.schemas import KeypointSchema, convert_keypoints, get_schema

__all__ = ["Poses"]


def _frozen(a: ArrayLike, dtype: type, shape: tuple[int | None, ...], what: str) -> NDArray[Any]:
    arr = np.array(a, dtype=dtype, copy=True)  # never alias the caller's data
    if arr.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, arr.shape, strict=True)):
        want = str(tuple("?" if s is None else s for s in shape)).replace("'", "")
        raise ValueError(f"{what} must have shape {want}, got {arr.shape}")
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class Poses:
    """Every person found in one image.

    - ``keypoints``: ``(N, K, 2)`` float32, x and y in original-image pixels; a missing keypoint has
      NaN coordinates and score 0, never (0, 0).
    - ``keypoint_scores``: ``(N, K)`` float32 in [0, 1].
    - ``scores``: ``(N,)`` float32 per-person confidence.
    - ``boxes``: optional ``(N, 4)`` float32 xyxy; ``track_ids``: optional ``(N,)`` int64.
    - ``extras``: optional named arrays whose first axis is the person (for example BlazePose's
      ``world`` landmarks ``(N, K, 3)``); they follow indexing and schema conversion.

    Arrays are copied on construction and read-only, so a ``Poses`` never changes the caller's data.
    """

    keypoints: NDArray[np.float32]
    keypoint_scores: NDArray[np.float32]
    scores: NDArray[np.float32]
    schema: KeypointSchema
    boxes: NDArray[np.float32] | None = None
    track_ids: NDArray[np.int64] | None = None
    extras: Mapping[str, NDArray[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        schema = get_schema(self.schema)
        k = schema.num_keypoints
        kp = _frozen(self.keypoints, np.float32, (None, k, 2), f"keypoints (schema {schema.name})")
        n = kp.shape[0]
        ks = _frozen(self.keypoint_scores, np.float32, (n, k), "keypoint_scores")
        sc = _frozen(self.scores, np.float32, (n,), "scores")
        if np.isnan(ks).any() or np.isnan(sc).any():
            raise ValueError("scores must not be NaN")
        object.__setattr__(self, "schema", schema)
        object.__setattr__(self, "keypoints", kp)
        object.__setattr__(self, "keypoint_scores", ks)
        object.__setattr__(self, "scores", sc)
        if self.boxes is not None:
            object.__setattr__(self, "boxes", _frozen(self.boxes, np.float32, (n, 4), "boxes"))
        if self.track_ids is not None:
            object.__setattr__(self, "track_ids", _frozen(self.track_ids, np.int64, (n,), "track_ids"))
        extras = {}
        for name, value in self.extras.items():
            arr = np.array(value, copy=True)
            if arr.ndim == 0 or arr.shape[0] != n:
                raise ValueError(f"extras[{name!r}] must have {n} rows (one per person), got shape {arr.shape}")
            arr.setflags(write=False)
            extras[name] = arr
        object.__setattr__(self, "extras", MappingProxyType(extras))

    @classmethod
    def empty(cls, schema: str | KeypointSchema) -> Poses:
        s = get_schema(schema)
        k = s.num_keypoints
        return cls(np.zeros((0, k, 2)), np.zeros((0, k)), np.zeros(0), s)

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])

    def __getitem__(self, index: int | slice | ArrayLike) -> Poses:
        """Select people: an int gives a ``Poses`` of one; slices, masks and index arrays work too."""
        if isinstance(index, (int, np.integer)):
            if not -len(self) <= index < len(self):
                raise IndexError(f"person {index} out of range for {len(self)} people")
            index = [int(index)]
        return Poses(
            self.keypoints[index],
            self.keypoint_scores[index],
            self.scores[index],
            self.schema,
            None if self.boxes is None else self.boxes[index],
            None if self.track_ids is None else self.track_ids[index],
            {k: v[index] for k, v in self.extras.items()},
        )

    def __iter__(self) -> Iterator[Poses]:
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        return f"Poses({len(self)} people, schema={self.schema.name})"

    @property
    def visible(self) -> NDArray[np.bool_]:
        """``(N, K)`` mask of keypoints that were found (score > 0)."""
        return self.keypoint_scores > 0

    def bounding_boxes(self) -> NDArray[np.float32]:
        """``boxes`` if given, else the tight xyxy box of each person's found keypoints."""
        if self.boxes is not None:
            return self.boxes
        out = np.zeros((len(self), 4), dtype=np.float32)
        for i in range(len(self)):
            pts = self.keypoints[i][self.visible[i]]
            if len(pts):
                out[i, :2] = pts.min(axis=0)
                out[i, 2:] = pts.max(axis=0)
        return out

    def with_schema(self, schema: str | KeypointSchema) -> Poses:
        """The same people in another keypoint schema (conversion by keypoint name)."""
        dst = get_schema(schema)
        if dst == self.schema:
            return self
        kp, ks = convert_keypoints(self.keypoints, self.keypoint_scores, self.schema, dst)
        extras = {}
        k_src = self.schema.num_keypoints
        for name, value in self.extras.items():
            if value.ndim >= 2 and value.shape[1] == k_src:  # per keypoint: map by name, NaN elsewhere
                out = np.full((len(self), dst.num_keypoints, *value.shape[2:]), np.nan, dtype=np.float32)
                for j, kname in enumerate(dst.keypoints):
                    if kname in self.schema.keypoints:
                        out[:, j] = value[:, self.schema.keypoints.index(kname)]
                extras[name] = out
            else:
                extras[name] = value
        return Poses(kp, ks, self.scores, dst, self.boxes, self.track_ids, extras)

    def _triplets(self) -> NDArray[np.float32]:
        """``(N, K, 3)`` x, y, score with missing keypoints as 0, 0, 0."""
        found = self.visible[..., None]
        xy = np.where(found, np.nan_to_num(self.keypoints, nan=0.0), 0.0)
        return np.concatenate([xy, self.keypoint_scores[..., None]], axis=2).astype(np.float32)

    def to_coco(self, image_id: int, category_id: int = 1) -> list[dict[str, Any]]:
        """COCO keypoint results (one dict per person), in this object's schema.

        Missing keypoints are written as ``0, 0, 0`` as the COCO format requires.
        """
        out = []
        triplets = self._triplets()
        for i in range(len(self)):
            entry: dict[str, Any] = {
                "image_id": int(image_id),
                "category_id": int(category_id),
                "keypoints": [round(float(v), 3) for v in triplets[i].ravel()],
                "score": round(float(self.scores[i]), 5),
            }
            if self.boxes is not None:
                x0, y0, x1, y1 = (float(v) for v in self.boxes[i])
                entry["bbox"] = [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)]
            if self.track_ids is not None:
                entry["track_id"] = int(self.track_ids[i])
            out.append(entry)
        return out

    def to_openpose(self) -> dict[str, Any]:
        """OpenPose's per-frame JSON layout (``people[].pose_keypoints_2d`` as x, y, c triplets)."""
        triplets = self._triplets()
        people = []
        for i in range(len(self)):
            person: dict[str, Any] = {"person_id": [-1], "pose_keypoints_2d": [float(v) for v in triplets[i].ravel()]}
            if self.track_ids is not None:
                person["person_id"] = [int(self.track_ids[i])]
            people.append(person)
        return {"version": 1.3, "people": people}
