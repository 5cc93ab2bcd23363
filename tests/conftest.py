"""Shared fixtures: the real pose data in ``../shared/data`` (outside the repository).

The data is never copied into the repository. When it is absent, tests that need it are skipped
locally, but fail under CI (``CI=true``) so a broken checkout cannot pass by skipping.
"""

from __future__ import annotations

import http.server
import json
import os
import threading
from collections.abc import Callable, Iterator
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


class LocalFileServer:
    """A local HTTP server (127.0.0.1, a free port) serving ``files`` by path and counting requests:
    the stand-in for a model hub in download tests (no test needs the internet)."""

    def __init__(self, files: dict[str, bytes], content_type: str = "application/octet-stream") -> None:
        self.files = files
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:  # keep pytest's output clean
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def http_server() -> Iterator[Callable[..., LocalFileServer]]:
    """Factory of :class:`LocalFileServer` instances, all closed after the test."""
    servers: list[LocalFileServer] = []

    def make(files: dict[str, bytes], content_type: str = "application/octet-stream") -> LocalFileServer:
        servers.append(LocalFileServer(files, content_type))
        return servers[-1]

    yield make
    for s in servers:
        s.close()
