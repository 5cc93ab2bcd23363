"""Parameter counts and FLOPs of posekit's PyTorch networks at their native input sizes.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one forward pass of batch 1,
run on meta tensors (no memory, no arithmetic). The counter reports **2 x multiply-adds** (a
multiply and an add are two FLOPs) for matmuls, convolutions and transposed convolutions, the
attention products included; elementwise ops, norms, softmax and interpolation are not counted.
Papers often quote GFLOPs that are really GMACs (multiply-adds, half of ours): the ``GMACs``
column (FLOPs / 2) is the one to hold against those.

Published figures are only filled in where they were checked against a source; the rest are
left empty (``null`` in the JSON).

    python benchmarks/model_costs.py [--out-dir benchmarks/results]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import write_results
from posekit.models.torch.fastpose import FASTPOSE_DUC_RES152_COCO, FASTPOSE_RES50_COCO, FastPose
from posekit.models.torch.openpose_mobilenet import OpenPoseMobileNetThin
from posekit.models.torch.sapiens import PUBLISHED_PARAMS as SAPIENS_PARAMS
from posekit.models.torch.sapiens import build_sapiens
from posekit.models.torch.vitpose import build_vitpose

# name -> (builder, (H, W) input, published params in M, published GMACs, source)
Entry = tuple[Callable[[], nn.Module], tuple[int, int], float | None, float | None, str]

_SAPIENS_SRC = "Sapiens paper (arXiv 2408.12569), backbone params, as in posekit.models.torch.sapiens.PUBLISHED_PARAMS"

MODELS: dict[str, Entry] = {
    "ViTPose-S": (lambda: build_vitpose("s"), (256, 192), None, None, ""),
    "ViTPose-B": (lambda: build_vitpose("b"), (256, 192), None, None, ""),
    "ViTPose-L": (lambda: build_vitpose("l"), (256, 192), None, None, ""),
    "ViTPose-H": (lambda: build_vitpose("h"), (256, 192), None, None, ""),
    "FastPose-R50 (COCO)": (lambda: FastPose(FASTPOSE_RES50_COCO), (256, 192), None, None, ""),
    "FastPose-DUC-R152 (COCO)": (lambda: FastPose(FASTPOSE_DUC_RES152_COCO), (256, 192), None, None, ""),
    "OpenPose MobileNet-thin": (OpenPoseMobileNetThin, (368, 432), None, None, ""),
    **{
        f"Sapiens-{a.upper()} (308 kpt)": (
            (lambda a=a: build_sapiens(a, num_keypoints=308)),
            (1024, 768),
            SAPIENS_PARAMS[a] / 1e6,
            None,
            _SAPIENS_SRC,
        )
        for a in ("0.3b", "0.6b", "1b", "2b")
    },
}


def measure(build: Callable[[], nn.Module], hw: tuple[int, int]) -> dict[str, Any]:
    with torch.device("meta"):
        model = build().eval()
        x = torch.empty(1, 3, *hw)
    params = sum(p.numel() for p in model.parameters())
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    flops = counter.get_total_flops()
    return {"params": params, "flops": flops}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent / "results")
    args = ap.parse_args(argv)

    rows = []
    for name, (build, hw, pub_params, pub_gmacs, source) in MODELS.items():
        m = measure(build, hw)
        rows.append(
            {
                "model": name,
                "input_hw": list(hw),
                "params": m["params"],
                "params_m": round(m["params"] / 1e6, 2),
                "gflops": round(m["flops"] / 1e9, 2),
                "gmacs": round(m["flops"] / 2e9, 2),
                "published_params_m": pub_params,
                "published_gmacs": pub_gmacs,
                "source": source or None,
            }
        )
    report = {
        "counter": "torch.utils.flop_counter.FlopCounterMode, batch 1, meta tensors",
        "flops_convention": "FLOPs = 2 x multiply-adds (matmul/conv/deconv/attention); GMACs = GFLOPs / 2",
        "torch": torch.__version__,
        "models": rows,
    }

    def fmt(v: float | None) -> str:
        return "" if v is None else f"{v:,.2f}"

    lines = [
        "# Model costs",
        "",
        "Batch 1, one forward pass, counted by `torch.utils.flop_counter.FlopCounterMode` on meta tensors.",
        "GFLOPs are 2 x multiply-adds (matmul, convolution, deconvolution, attention products);",
        'GMACs = GFLOPs / 2, the unit most papers call "GFLOPs". Input is height x width.',
        "",
        "| model | input | params (M) | GFLOPs | GMACs | published params (M) | published GMACs | source |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        h, w = r["input_hw"]
        lines.append(
            f"| {r['model']} | {h}x{w} | {r['params_m']:,.2f} | {r['gflops']:,.2f} | {r['gmacs']:,.2f} | "
            f"{fmt(r['published_params_m'])} | {fmt(r['published_gmacs'])} | {r['source'] or ''} |"
        )
    write_results(args.out_dir, "model_costs", report, lines)


if __name__ == "__main__":
    main()
