"""Models to deploy without BlockZoo: a ``torch.export`` program (.pt2) and ONNX, preprocessing inside.

Both files hold one graph from images to logits::

    images  uint8, N x H x W x C (as decoded from PNG/JPEG), pixel values 0..255
      -> float32 / 255 -> N x C x H x W
      -> resize to the space's input size (bilinear, antialiased, align_corners=False; only if
         H x W differs from it)
      -> (x - mean) / std per channel (the training split's statistics, the zoo's normalisation)
      -> the assembled network (BN recalibrated on the KD batches, as the proxy measured it)
    logits  float32, N x num_classes (class names in the spec)

which is exactly the preprocessing the zoo's training and scoring saw (``blockzoo.data``,
``to_tensor_split``). ``H x W`` is the dataset's stored image size (fixed in the graph); the
batch size is free. The spec (:func:`deploy_spec`, JSON) describes all of it and travels in the
file: ``blockzoo_spec.json`` in the .pt2 archive's extra files, ``blockzoo_spec`` in the ONNX
model's metadata. Loading needs only ``torch`` (``torch.export.load(path).module()``) or
``onnxruntime``; docs/deploy-model.md shows both.

Each export is checked before it is written: the .pt2 program and the ONNX model (run by
onnxruntime) must give the wrapped torch model's logits on seeded random images to
:data:`RTOL` / :data:`ATOL`, or :class:`ExportMismatch` is raised.
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .export import assemble_for_export
from .progress import ProgressFn, report
from .space import Architecture
from .zoo import BlockZoo

FORMATS: tuple[str, ...] = ("pt2", "onnx")
SPEC_FORMAT = "blockzoo.deploy/v1"
SPEC_NAME = "blockzoo_spec.json"   # extra file of the .pt2 archive
SPEC_KEY = "blockzoo_spec"         # metadata key of the ONNX model
INPUT_NAME, OUTPUT_NAME = "images", "logits"
RTOL, ATOL = 1e-4, 1e-4            # export vs torch model, on the logits
CHECK_IMAGES = 8
MAX_BATCH = 65536                  # the exported batch dimension's upper bound


class ExportMismatch(RuntimeError):
    """An exported model does not reproduce the torch model's logits."""


class DeployableModel(nn.Module):
    """The assembled network behind its preprocessing: uint8 N x H x W x C images in, logits out."""

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float], image_size: tuple[int, int],
                 input_size: int) -> None:
        super().__init__()
        self.net = net
        self.image_size = tuple(image_size)
        self.input_size = int(input_size)
        self.register_buffer("pixel_mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("pixel_std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).to(torch.float32) / 255.0
        if self.image_size != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", antialias=True,
                              align_corners=False)
        return self.net((x - self.pixel_mean) / self.pixel_std)


def image_shape_of(zoo: BlockZoo, image_shape: Optional[Sequence[int]] = None) -> tuple[int, int, int]:
    """(H, W, C) of the images the model takes: ``image_shape``, else the space's input size."""
    if image_shape is None:
        return zoo.space.input_size, zoo.space.input_size, zoo.in_channels
    height, width, channels = (int(v) for v in image_shape)
    if channels != zoo.in_channels:
        raise ValueError(f"image shape {height}x{width}x{channels}: the zoo's networks take {zoo.in_channels} "
                         "channel(s)")
    if height < 1 or width < 1:
        raise ValueError(f"image shape {height}x{width}x{channels}: height and width must be >= 1")
    return height, width, channels


def deploy_spec(zoo: BlockZoo, arch: Architecture, image_shape: Sequence[int], fmt: str) -> dict[str, Any]:
    """Everything a user needs to feed the model and read its output (module docstring)."""
    height, width, channels = image_shape
    size = zoo.space.input_size
    norm = zoo.manifest.get("normalization") or {}
    mean = norm.get("mean") or [0.0] * channels
    std = norm.get("std") or [1.0] * channels
    return {
        "format": SPEC_FORMAT,
        "file_format": fmt,
        "arch_id": arch.id,
        "architecture": arch.to_dict(),
        "space": zoo.space.name,
        "input": {"name": INPUT_NAME, "dtype": "uint8", "layout": "NHWC", "shape": ["batch", height, width, channels],
                  "value_range": [0, 255]},
        "preprocessing": {
            "embedded": True,
            "steps": ["cast to float32 and divide by 255", "NHWC -> NCHW",
                      f"resize to {size}x{size}" if (height, width) != (size, size) else "no resize",
                      "subtract mean, divide by std (per channel)"],
            "scale": 1 / 255,
            "resize": None if (height, width) == (size, size) else {
                "size": [size, size], "method": "bilinear", "antialias": True, "align_corners": False},
            "mean": [float(v) for v in mean],
            "std": [float(v) for v in std],
        },
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": ["batch", zoo.num_classes],
                   "meaning": "logits (softmax for probabilities; argmax is the predicted class)",
                   "class_names": zoo.manifest.get("class_names")},
        "network_input": {"layout": "NCHW", "shape": ["batch", zoo.in_channels, size, size], "dtype": "float32"},
        "reference_sha256": zoo.manifest["reference"]["sha256"],
        "dataset_hash": zoo.manifest.get("dataset_hash", ""),
        "tolerance": {"rtol": RTOL, "atol": ATOL},
    }


def deployable_model(zoo: BlockZoo, arch: Architecture, image_shape: Optional[Sequence[int]] = None) -> DeployableModel:
    """The zoo's assembled ``arch`` (BN recalibrated) behind its preprocessing, on the CPU, eval mode."""
    height, width, _ = image_shape_of(zoo, image_shape)
    norm = zoo.manifest.get("normalization") or {}
    net = assemble_for_export(zoo, arch).cpu().to(memory_format=torch.contiguous_format).float()
    mean = norm.get("mean") or [0.0] * zoo.in_channels
    std = norm.get("std") or [1.0] * zoo.in_channels
    return DeployableModel(net, mean, std, (height, width), zoo.space.input_size).eval()


def check_images(image_shape: Sequence[int], count: int = CHECK_IMAGES, seed: int = 0) -> torch.Tensor:
    """Seeded random uint8 images: the inputs exports are checked on."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, *image_shape), dtype=torch.uint8, generator=generator)


def _compare(name: str, got: np.ndarray, want: np.ndarray) -> dict[str, Any]:
    diff = float(np.abs(got - want).max()) if got.size else 0.0
    if got.shape != want.shape or not np.allclose(got, want, rtol=RTOL, atol=ATOL):
        raise ExportMismatch(f"the {name} export's logits differ from the torch model's by up to {diff:.3g} "
                             f"(tolerance rtol {RTOL}, atol {ATOL})")
    return {"images": int(got.shape[0]), "max_abs_diff": diff,
            "same_argmax": bool((got.argmax(1) == want.argmax(1)).all())}


def _exported_program(model: DeployableModel, example: torch.Tensor) -> torch.export.ExportedProgram:
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with torch.no_grad():
        return torch.export.export(model, (example,), dynamic_shapes=({0: batch},))


def export_pt2(model: DeployableModel, spec: dict[str, Any], progress: Optional[ProgressFn] = None
               ) -> tuple[bytes, dict[str, Any]]:
    """(the .pt2 archive's bytes, the check's numbers): ``torch.export.load`` reads it back."""
    images = check_images(spec["input"]["shape"][1:])
    report(progress, 0.1, "tracing the model (torch.export)")
    program = _exported_program(model, images)
    buffer = io.BytesIO()
    torch.export.save(program, buffer, extra_files={SPEC_NAME: json.dumps(spec)})
    report(progress, 0.8, "checking the exported program against the model")
    buffer.seek(0)
    loaded = torch.export.load(buffer).module()
    with torch.no_grad():
        check = _compare("pt2", loaded(images).numpy(), model(images).numpy())
    return buffer.getvalue(), check


def export_onnx(model: DeployableModel, spec: dict[str, Any], progress: Optional[ProgressFn] = None
                ) -> tuple[bytes, dict[str, Any]]:
    """(the ONNX model's bytes, the check's numbers), checked with onnxruntime."""
    import onnx
    import onnxruntime

    images = check_images(spec["input"]["shape"][1:])
    report(progress, 0.1, "tracing the model (torch.export)")
    program = _exported_program(model, images)
    report(progress, 0.4, "converting to ONNX")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on its own internals are not the user's
        onnx_program = torch.onnx.export(program, dynamo=True, verbose=False, input_names=[INPUT_NAME],
                                         output_names=[OUTPUT_NAME])
    proto = onnx_program.model_proto
    proto.metadata_props.add(key=SPEC_KEY, value=json.dumps(spec))
    data = proto.SerializeToString()
    onnx.checker.check_model(onnx.load_from_string(data))
    report(progress, 0.8, "checking the ONNX model with onnxruntime")
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT_NAME], {INPUT_NAME: images.numpy()})[0]
    with torch.no_grad():
        check = _compare("ONNX", got, model(images).numpy())
    return data, check


def export_deployable(zoo: BlockZoo, arch: Architecture, fmt: str, image_shape: Optional[Sequence[int]] = None,
                      progress: Optional[ProgressFn] = None) -> tuple[bytes, dict[str, Any], dict[str, Any]]:
    """(file bytes, spec, check) of ``arch`` assembled from ``zoo`` as ``fmt`` (``pt2`` or ``onnx``)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown deploy format {fmt!r}; known: {', '.join(FORMATS)}")
    arch = zoo.space.parse(arch)
    shape = image_shape_of(zoo, image_shape)
    report(progress, 0.0, f"assembling {arch.id}")
    model = deployable_model(zoo, arch, shape)
    spec = deploy_spec(zoo, arch, shape, fmt)
    data, check = (export_pt2 if fmt == "pt2" else export_onnx)(model, spec, progress)
    return data, spec, check
