"""Speed of COCO keypoint evaluation: pycocotools vs posekit's numpy evaluator (and peers).

All timings come from one run on the same inputs: the coco-val2017-dev ground truth
(``../shared/data``) replicated ``--replicate`` times under new image ids, with realistic seeded
predictions (every labelled person jittered by a per-person pixel noise, some people missed,
some duplicated, random scores, a few false positives per image and, on a share of the images,
more than 20 detections so the per-image cap matters).

Timed, each best of ``--repeats`` (inputs copied outside the timer):

* ``pycocotools``: ``COCO.createIndex`` + ``loadRes`` + ``evaluate`` + ``accumulate`` + ``summarize``;
* ``posekit.eval.evaluate_coco``: the pycocotools wrapper (adds a deep copy and field filling);
* ``posekit.eval.fast.evaluate_keypoints``: the numpy evaluator, full call;
* optional peers, run in a throwaway venv by a subprocess of this script (``--peer-worker``):
  ``faster-coco-eval`` (``COCOeval_faster``) and ``hotcoco`` (``COCOeval``), each doing the same
  work as the pycocotools row, plus pycocotools again inside that venv as a cross-check.

Every evaluator's 10 stats and precision/recall arrays are compared with pycocotools (max abs
difference, parity = within 1e-9). Writes ``benchmarks/results/eval_speed.json`` and ``.md``.

Commands::

    # once: the throwaway peer venv (git-ignored) with faster-coco-eval and hotcoco from PyPI
    /work/venv/bin/python benchmarks/eval_speed.py --build-peers
    # the benchmark (uses the peer venv when it exists; --no-peers skips it)
    /work/venv/bin/python benchmarks/eval_speed.py
    /work/venv/bin/python benchmarks/eval_speed.py --replicate 10 --repeats 5 --no-peers
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "coco-val2017-dev" / "person_keypoints.json"
PEER_VENV = REPO / "benchmarks" / ".peer" / "eval-venv"
RESULTS = REPO / "benchmarks" / "results"
PEER_PACKAGES = ("numpy>=2", "pycocotools", "faster-coco-eval", "hotcoco")
STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
TOL = 1e-9


# --- inputs --------------------------------------------------------------------------------------


def replicate(gt: dict[str, Any], times: int) -> dict[str, Any]:
    """``gt`` repeated ``times`` times under fresh image ids (and annotation ids from 1)."""
    images, anns = [], []
    step = max(im["id"] for im in gt["images"]) + 1
    for r in range(times):
        for im in gt["images"]:
            images.append({**im, "id": im["id"] + r * step})
        for a in gt["annotations"]:
            anns.append({**a, "image_id": a["image_id"] + r * step, "id": len(anns) + 1})
    return {**gt, "images": images, "annotations": anns}


def predictions(gt: dict[str, Any], seed: int) -> list[dict[str, Any]]:
    """Seeded, realistic keypoint detections for ``gt`` (COCO results format)."""
    rng = np.random.default_rng(seed)
    out: list[dict[str, Any]] = []
    by_image: dict[int, list[dict[str, Any]]] = {}
    for a in gt["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    for im in gt["images"]:
        w, h = im.get("width", 640), im.get("height", 480)
        for a in by_image.get(im["id"], []):
            kp = np.asarray(a["keypoints"], np.float64).reshape(-1, 3)
            if a.get("iscrowd", 0) or not (kp[:, 2] > 0).any() or rng.random() < 0.1:
                continue  # crowd, unlabelled or missed person
            x0, y0, bw, bh = a["bbox"]
            scale = np.sqrt(max(a["area"], 1.0))
            for _ in range(1 + int(rng.random() < 0.15)):  # sometimes a duplicate
                p = kp.copy()
                unl = p[:, 2] == 0  # unlabelled joints: a guess inside the box
                p[unl, 0] = x0 + rng.random(unl.sum()) * bw
                p[unl, 1] = y0 + rng.random(unl.sum()) * bh
                p[:, :2] += rng.normal(0, rng.uniform(0.005, 0.08) * scale, (len(p), 2))
                p[:, 2] = rng.uniform(0.2, 1.0, len(p))
                out.append({"image_id": im["id"], "category_id": 1, "keypoints": np.round(p, 2).ravel().tolist(),
                            "score": float(np.round(rng.uniform(0.3, 1.0), 3))})  # fmt: skip
        n_fp = int(rng.poisson(2)) + (int(rng.integers(15, 30)) if rng.random() < 0.1 else 0)
        for _ in range(n_fp):  # false positives: a random small skeleton somewhere
            cx, cy, s = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(10, 150)
            xy = np.array([cx, cy]) + rng.normal(0, s / 3, (17, 2)) * [0.5, 1.0]
            p = np.c_[xy, rng.uniform(0.05, 0.6, 17)]
            out.append({"image_id": im["id"], "category_id": 1, "keypoints": np.round(p, 2).ravel().tolist(),
                        "score": float(np.round(rng.uniform(0.0, 0.6), 3))})  # fmt: skip
    return out


# --- evaluators ----------------------------------------------------------------------------------


def best_of(fn: Callable[[], Any], repeats: int, setup: Callable[[], Any] | None = None) -> tuple[float, Any]:
    """(seconds of the fastest of ``repeats`` calls, the last result); ``setup`` runs untimed."""
    best, out = float("inf"), None
    for _ in range(repeats):
        arg = setup() if setup else None
        t = time.perf_counter()
        out = fn(arg) if setup else fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def run_pycocotools(gt: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, Any]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, iouType="keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"stats": list(map(float, ev.stats)), "precision": ev.eval["precision"], "recall": ev.eval["recall"]}


def run_faster_coco_eval(gt: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, Any]:
    from faster_coco_eval import COCO, COCOeval_faster

    coco_gt = COCO(gt)
    coco_dt = coco_gt.loadRes(results)
    ev = COCOeval_faster(coco_gt, coco_dt, iouType="keypoints", print_function=lambda *a, **k: None)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return {"stats": list(map(float, ev.stats[:10])), "precision": ev.eval["precision"], "recall": ev.eval["recall"]}


def run_hotcoco(gt: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, Any]:
    from hotcoco import COCO, COCOeval

    coco_gt = COCO(gt)
    coco_dt = coco_gt.load_res(results)
    ev = COCOeval(coco_gt, coco_dt, "keypoints")
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    e = ev.eval
    return {"stats": list(map(float, ev.stats[:10])), "precision": np.asarray(e["precision"]),
            "recall": np.asarray(e["recall"])}  # fmt: skip


def compare(ref: dict[str, Any], got: dict[str, Any]) -> dict[str, Any]:
    """Max abs differences of ``got`` from the pycocotools reference ``ref``."""
    out: dict[str, Any] = {}
    for key in ("stats", "precision", "recall"):
        if key not in got:
            out[f"max_diff_{key}"] = "n/a"
            continue
        a, b = np.asarray(ref[key], np.float64), np.asarray(got[key], np.float64)
        out[f"max_diff_{key}"] = float(np.abs(a - b).max()) if a.shape == b.shape else f"shape {b.shape} != {a.shape}"
    out["parity"] = all(v == "n/a" or (isinstance(v, float) and v <= TOL) for v in out.values())
    return out


def peer_worker(inputs: Path, output: Path, repeats: int) -> None:
    """Inside the peer venv: time pycocotools, faster-coco-eval and hotcoco on ``inputs``."""
    data = json.loads(inputs.read_text())
    gt, results = data["gt"], data["results"]
    report: dict[str, Any] = {"python": sys.version.split()[0], "evaluators": {}}
    runners = {"pycocotools (peer venv)": ("pycocotools", run_pycocotools),
               "faster-coco-eval": ("faster_coco_eval", run_faster_coco_eval),
               "hotcoco": ("hotcoco", run_hotcoco)}  # fmt: skip
    from importlib.metadata import version

    for name, (module, fn) in runners.items():
        try:
            seconds, out = best_of(lambda a, fn=fn: fn(a[0], a[1]), repeats,
                                   setup=lambda: (copy.deepcopy(gt), copy.deepcopy(results)))  # fmt: skip
        except Exception as exc:  # a peer that cannot run is reported, not fatal
            report["evaluators"][name] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        dist = {"faster_coco_eval": "faster-coco-eval"}.get(module, module)
        report["evaluators"][name] = {"version": version(dist), "seconds": seconds, "stats": out["stats"],
                                      "precision": np.asarray(out["precision"]).tolist(),
                                      "recall": np.asarray(out["recall"]).tolist()}  # fmt: skip
    output.write_text(json.dumps(report))


def build_peers() -> None:
    subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    subprocess.run([str(PEER_VENV / "bin" / "python"), "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True)


# --- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA, help="COCO keypoint ground truth (default: %(default)s)")
    ap.add_argument("--replicate", type=int, default=60, help="copies of the ground truth (default: %(default)s)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per evaluator, best kept (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the predictions (default: %(default)s)")
    ap.add_argument("--peer-python", type=Path, default=PEER_VENV / "bin" / "python",
                    help="python of the peer venv (default: %(default)s)")  # fmt: skip
    ap.add_argument("--no-peers", action="store_true", help="skip faster-coco-eval and hotcoco")
    ap.add_argument(
        "--build-peers", action="store_true", help=f"create {PEER_VENV} with {', '.join(PEER_PACKAGES)} and exit"
    )
    ap.add_argument(
        "--out", type=Path, default=RESULTS / "eval_speed", help="output stem, .json/.md (default: %(default)s)"
    )
    ap.add_argument("--peer-worker", nargs=2, type=Path, metavar=("INPUTS", "OUTPUT"),
                    help="internal: run the peers on INPUTS (json), write OUTPUT (run by the peer python)")  # fmt: skip
    args = ap.parse_args(argv)

    if args.peer_worker:
        peer_worker(*args.peer_worker, repeats=args.repeats)
        return 0
    if args.build_peers:
        build_peers()
        return 0

    from importlib.metadata import version

    from posekit.eval.coco import _fill_missing, evaluate_coco
    from posekit.eval.fast import evaluate_keypoints

    base = json.loads(args.data.read_text())
    _fill_missing(base)  # a complete ground truth, so every evaluator sees the same input
    gt = replicate(base, args.replicate)
    results = predictions(gt, args.seed)
    n_labelled = sum(1 for a in gt["annotations"] if not a["iscrowd"] and a["num_keypoints"] > 0)
    per_image = np.bincount(np.unique([r["image_id"] for r in results], return_inverse=True)[1])
    print(f"{len(gt['images'])} images, {n_labelled} labelled persons, {len(results)} detections "
          f"({int((per_image > 20).sum())} images with more than 20)")  # fmt: skip

    rows: dict[str, dict[str, Any]] = {}
    secs, ref = best_of(lambda a: run_pycocotools(a[0], a[1]), args.repeats,
                        setup=lambda: (copy.deepcopy(gt), copy.deepcopy(results)))  # fmt: skip
    rows["pycocotools"] = {"version": version("pycocotools"),
                           "seconds": secs, "stats": ref["stats"], **compare(ref, ref)}  # fmt: skip
    print(f"pycocotools: {secs:.3f} s")

    secs, stats = best_of(lambda: evaluate_coco(gt, results), args.repeats)
    got = {"stats": list(stats.values())}  # the wrapper returns the stats only
    rows["posekit evaluate_coco (pycocotools wrapper)"] = {"seconds": secs, "stats": got["stats"], **compare(ref, got)}
    print(f"posekit evaluate_coco: {secs:.3f} s")

    secs, fast = best_of(lambda: evaluate_keypoints(gt, results), args.repeats)
    got = {"stats": list(fast.stats.values()), "precision": fast.precision, "recall": fast.recall}
    rows["posekit evaluate_keypoints (numpy)"] = {"seconds": secs, "stats": got["stats"], **compare(ref, got)}
    print(f"posekit evaluate_keypoints: {secs:.3f} s")

    peer_note = "not run (--no-peers)"
    if not args.no_peers:
        if not args.peer_python.exists():
            peer_note = f"not run: {args.peer_python} missing (build it with --build-peers)"
        else:
            with tempfile.TemporaryDirectory() as tmp:
                inp, outp = Path(tmp) / "inputs.json", Path(tmp) / "peers.json"
                inp.write_text(json.dumps({"gt": gt, "results": results}))
                env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
                subprocess.run([str(args.peer_python), __file__, "--repeats", str(args.repeats),
                                "--peer-worker", str(inp), str(outp)], check=True, env=env)  # fmt: skip
                peers = json.loads(outp.read_text())
            venv = args.peer_python.absolute().parent.parent
            where = venv.relative_to(REPO) if venv.is_relative_to(REPO) else venv
            peer_note = f"run in {where} (python {peers['python']}), same inputs, same machine, one process each"
            for name, r in peers["evaluators"].items():
                if "error" in r:
                    rows[name] = {"error": r["error"]}
                    print(f"{name}: {r['error']}")
                    continue
                rows[name] = {"version": r["version"], "seconds": r["seconds"], "stats": r["stats"], **compare(ref, r)}
                print(f"{name}: {r['seconds']:.3f} s")

    base_s = rows["pycocotools"]["seconds"]
    for r in rows.values():
        if "seconds" in r:
            r["speedup_vs_pycocotools"] = base_s / r["seconds"]
    report = {
        "what": "COCO keypoint evaluation (loadRes+evaluate+accumulate+summarize), best of repeats",
        "data": str(args.data.relative_to(REPO.parent)) if args.data.is_relative_to(REPO.parent) else str(args.data),
        "replicate": args.replicate, "repeats": args.repeats, "seed": args.seed,
        "images": len(gt["images"]), "labelled_persons": n_labelled, "detections": len(results),
        "machine": {"python": platform.python_version(), "numpy": np.__version__, "cpus": os.cpu_count(),
                    "processor": platform.processor() or platform.machine()},
        "peers": peer_note, "tolerance": TOL, "evaluators": rows,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# COCO keypoint evaluation speed",
        "",
        f"{report['images']} images ({args.data.name} x{args.replicate}), {n_labelled} labelled persons, "
        f"{len(results)} detections; best of {args.repeats}; {report['machine']['cpus']} CPUs. Peers: {peer_note}.",
        f"Parity: every stat and the full precision/recall arrays within {TOL:g} of pycocotools.",
        "",
        "| evaluator | version | seconds | speed-up vs pycocotools | AP | parity | max diff (stats / precision / recall) |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for name, r in rows.items():
        if "error" in r:
            lines.append(f"| {name} | | | | | error: {r['error']} | |")
            continue
        diffs = " / ".join(f"{r[k]:.1e}" if isinstance(r[k], float) else str(r[k])
                           for k in ("max_diff_stats", "max_diff_precision", "max_diff_recall"))  # fmt: skip
        lines.append(f"| {name} | {r.get('version') or ''} | {r['seconds']:.3f} | {r['speedup_vs_pycocotools']:.1f}x "
                     f"| {r['stats'][0]:.4f} | {'yes' if r['parity'] else 'NO'} | {diffs} |")  # fmt: skip
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[6:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
