"""ONNX export of the top-down checkpoint presets (ViTPose, FastPose, Sapiens).

The exported graph is the network alone: input ``image`` ``(N, 3, H, W)`` float32 (RGB / 255, then
``(x - mean) / std``), output ``heatmaps`` ``(N, K, h, w)``; the batch is dynamic, the crop size is
the preset's. The file appears complete or not at all. What the heatmaps mean and how crops are made is written into the file's
``metadata_props`` (:func:`onnx_metadata`), so the file can be used without posekit. After writing,
onnxruntime (when installed) runs a random batch of two and its output must equal PyTorch's within
``atol`` (1e-4).

Files whose weights exceed ONNX's 2 GB protobuf limit (Sapiens 0.6B and larger) keep their tensors
in one external data file beside the ``.onnx`` (``<name>.onnx.data``), as ONNX's external-data
format does.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from posekit.models.torch.presets import CHECKPOINT_PRESETS, LoadedNetwork, load_network
from posekit.schemas import get_schema

__all__ = ["INPUT_NAME", "OUTPUT_NAME", "export_checkpoint_preset", "export_network", "onnx_metadata"]

log = logging.getLogger(__name__)

INPUT_NAME = "image"
OUTPUT_NAME = "heatmaps"
PROTOBUF_LIMIT = 2_000_000_000  # bytes; ONNX's single-file limit is 2 GiB, keep some room


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_CROP_MAPS = {
    "udp": "x' = (W - 1) / bw * (x - cx) + (W - 1) / 2",
    "standard": "x' = W / bw * (x - cx) + W / 2",
}


def onnx_metadata(name: str, net: LoadedNetwork, heatmap_hw: tuple[int, int]) -> dict[str, str]:
    """What an exported preset's input and output mean, as ONNX ``metadata_props``."""
    preset = CHECKPOINT_PRESETS[name]
    schema = get_schema(net.schema)
    w, h = net.input_size
    hh, hw = heatmap_hw
    alignment = "udp" if net.decode == "udp" else "standard"
    return {
        "posekit.model": name,
        "posekit.family": "top-down",
        "posekit.weights": preset.weights,
        "posekit.schema": schema.name,
        "posekit.keypoints": json.dumps(list(schema.keypoints)),
        "posekit.flip_pairs": json.dumps([list(p) for p in schema.flip_pairs]),
        "posekit.skeleton": json.dumps([list(p) for p in schema.skeleton]),
        "posekit.input": (
            f"{INPUT_NAME}: (N, 3, {h}, {w}) float32, RGB; pixels / 255, then (x - mean) / std per channel"
        ),
        "posekit.input_size": json.dumps([w, h]),
        "posekit.mean": json.dumps(list(net.mean)),
        "posekit.std": json.dumps(list(net.std)),
        "posekit.output": OUTPUT_NAME,
        "posekit.channels": f"0-{schema.num_keypoints - 1}: one heatmap per keypoint ({schema.name} order)",
        "posekit.heatmap_size": json.dumps([hw, hh]),
        "posekit.stride": json.dumps(w / hw),
        "posekit.codec": net.codec,
        "posekit.decode": net.decode,
        "posekit.crop": (
            "centre = person box centre; box padded on its short side to the input's W:H aspect ratio, then "
            f"both sides x1.25; {alignment} alignment, image -> crop {_CROP_MAPS[alignment]}, likewise y"
        ),
        "posekit.source_sha256": _sha256(net.source),
    }


def export_network(
    name: str,
    net: LoadedNetwork,
    path: str | Path,
    *,
    opset: int = 17,
    atol: float = 1e-4,
    verify: bool = True,
    protobuf_limit: int = PROTOBUF_LIMIT,
) -> Path:
    """Write ``net`` (a preset's network, see :func:`~posekit.models.torch.presets.load_network`) as ONNX."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = net.model.eval()
    w, h = net.input_size
    sample = torch.zeros(1, 3, h, w)
    with torch.no_grad():
        heat_hw = tuple(model(sample).shape[-2:])
    with tempfile.TemporaryDirectory(prefix=".posekit-export-", dir=path.parent) as work:
        traced = Path(work) / "model.onnx"
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated; tracer warnings
            torch.onnx.export(
                model,
                (sample,),
                str(traced),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                opset_version=opset,
                dynamo=False,
            )
        proto = onnx.load(str(traced))  # with any external data torch wrote beside it
        del proto.metadata_props[:]
        onnx.helper.set_model_props(proto, onnx_metadata(name, net, heat_hw))  # type: ignore[arg-type]
        proto.doc_string = f"posekit {name}: {CHECKPOINT_PRESETS[name].sources}"
        out = Path(work) / "out" / path.name
        out.parent.mkdir()
        weight_bytes = sum(int(np.prod(t.dims)) * 4 for t in proto.graph.initializer)
        data = path.name + ".data"
        if weight_bytes > protobuf_limit:
            onnx.save(proto, str(out), save_as_external_data=True, all_tensors_to_one_file=True, location=data)
            onnx.checker.check_model(str(out))
        else:
            onnx.checker.check_model(proto)
            onnx.save(proto, str(out))
        if verify:
            _verify(model, out, (h, w), atol)
        # the .onnx appears last, complete: its data file (if any) is already in place
        if (out.parent / data).exists():
            os.replace(out.parent / data, path.with_name(data))
        os.replace(out, path)
    return path


def _verify(model: Any, path: Path, hw: tuple[int, int], atol: float) -> None:
    try:
        import onnxruntime as ort
    except ImportError:
        log.warning("onnxruntime is not installed: %s was not checked against PyTorch", path)
        return
    x = np.random.default_rng(0).standard_normal((2, 3, *hw)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {INPUT_NAME: x})
    err = float(np.abs(got - want).max())
    if got.shape != want.shape or err > atol:
        raise RuntimeError(
            f"{path}: onnxruntime's output {got.shape} differs from PyTorch's {want.shape} by {err:.3g} (> {atol:g})"
        )
    log.info("%s: onnxruntime matches PyTorch within %.3g on a batch of 2", path, err)


def export_checkpoint_preset(
    name: str,
    path: str | Path,
    checkpoint: str | Path | None = None,
    *,
    opset: int = 17,
    verify: bool = True,
    progress: bool = True,
    **options: Any,
) -> Path:
    """Read preset ``name``'s checkpoint (``checkpoint`` or its registered weights) and export it."""
    net = load_network(name, checkpoint, progress=progress, **options)
    return export_network(name, net, path, opset=opset, verify=verify)
