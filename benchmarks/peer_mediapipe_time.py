"""Time MediaPipe's own Pose solution on given image files (run by the peer venv's python).

The solution and its settings are exactly those of ``benchmarks/peer_mediapipe.py`` (legacy
``solutions.pose.Pose``, static images, full model, downloads forbidden). Images are decoded with
``cv2.imread`` before timing; each timed call is ``pose.process(rgb)``. MediaPipe keeps at most
one person, so ``people_found`` is 0 or 1 per image. ``benchmarks/speed.py`` runs this as::

    benchmarks/.peer/mediapipe-venv/bin/python benchmarks/peer_mediapipe_time.py \\
        --out times.json --repeats 5 --warmup 1 img1.jpg img2.jpg ...

Output JSON: ``mediapipe``, ``solution``, and ``images``: file name -> ``{"ms": [...] (one per
round), "people_found": 0|1}``. Rounds interleave the images, like posekit's benchmark.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import peer_mediapipe as peer  # found through the path above


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Time MediaPipe Pose (legacy solution) on image files.")
    p.add_argument("images", nargs="+", type=Path, help="image files")
    p.add_argument("--out", type=Path, required=True, help="result JSON")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds over all images")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    args = p.parse_args(argv)
    peer._ensure_peer_python()
    import mediapipe as mp

    attempts = peer._forbid_downloads()
    rgbs = {path.name: peer.read_rgb(path) for path in args.images}
    out: dict[str, dict] = {name: {"ms": [], "people_found": 0} for name in rgbs}
    with peer.make_pose() as pose:
        for _ in range(args.warmup):
            for rgb in rgbs.values():
                pose.process(rgb)
        for _ in range(args.repeats):
            for name, rgb in rgbs.items():
                t0 = time.perf_counter()
                res = pose.process(rgb)
                out[name]["ms"].append((time.perf_counter() - t0) * 1e3)
                out[name]["people_found"] = int(res.pose_landmarks is not None)
    args.out.write_text(
        json.dumps(
            {
                "mediapipe": mp.__version__,
                "solution": peer.SOLUTION,
                "model_downloads_attempted": attempts,
                "images": out,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
