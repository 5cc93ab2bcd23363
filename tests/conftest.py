"""Shared fixtures: the real pose data in ``../shared/data`` (outside the repository).

The data is never copied into the repository. When it is absent, tests that need it are skipped
locally, but fail under CI (``CI=true``) so a broken checkout cannot pass by skipping.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT.parent / "shared" / "data"


def _missing(what: str, path: Path) -> None:
    """Skip (locally) or fail (CI) because ``path`` is absent."""
    msg = f"{what} not found at {path} (expected the shared data next to the repository: ../shared/data)"
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"{msg}; CI=true, so missing data is an error, not a skip")
    pytest.skip(msg)


@dataclass(frozen=True)
class CocoSet:
    """A COCO-keypoints folder: ``person_keypoints.json`` plus ``images/``."""

    root: Path
    annotations: Path
    images: Path

    def load(self) -> dict[str, Any]:
        """A fresh copy of the annotation JSON (callers may mutate it)."""
        with open(self.annotations) as f:
            data: dict[str, Any] = json.load(f)
        return data

    def image_path(self, image: dict[str, Any]) -> Path:
        return self.images / image["file_name"]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """``../shared/data`` relative to the repository root."""
    if not DATA_DIR.is_dir():
        _missing("shared data folder", DATA_DIR)
    return DATA_DIR


@pytest.fixture(scope="session")
def dev_set(data_dir: Path) -> CocoSet:
    """COCO val2017 dev subset (77 images, 91 persons with keypoints)."""
    root = data_dir / "coco-val2017-dev"
    ann = root / "person_keypoints.json"
    if not ann.is_file():
        _missing("coco-val2017-dev annotations", ann)
    return CocoSet(root=root, annotations=ann, images=root / "images")
