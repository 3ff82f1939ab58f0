"""Export an architecture assembled from the zoo: weights ready to fine-tune or deploy.

The file is a safetensors state dict of ``blockzoo.build_network(space, arch, in_channels,
num_classes)`` whose header metadata ``blockzoo_spec`` holds the JSON needed to rebuild the
module (space, architecture, channels, classes, class names, input normalisation). BatchNorm
statistics are recalibrated on the zoo's KD batches, exactly as the proxy measured them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors import safe_open
from safetensors.torch import load_file, save

from .nets import Network, build_network
from .training import recalibrate_batchnorm
from .space import Architecture, SearchSpace
from .zoo import BlockZoo

SPEC_KEY = "blockzoo_spec"


def architecture_spec(zoo: BlockZoo, arch: Architecture) -> dict[str, Any]:
    return {
        "format": "blockzoo.build_network/v1",
        "space": zoo.space.to_dict(),
        "arch": arch.to_dict(),
        "arch_id": arch.id,
        "in_channels": zoo.in_channels,
        "num_classes": zoo.num_classes,
        "class_names": zoo.manifest.get("class_names"),
        "input_size": zoo.space.input_size,
        "normalization": zoo.manifest.get("normalization", {}),
        "dataset_hash": zoo.manifest.get("dataset_hash", ""),
        "reference_sha256": zoo.manifest["reference"]["sha256"],
    }


def assemble_for_export(zoo: BlockZoo, arch: Architecture | dict | str) -> Network:
    """The assembled candidate with zoo weights and BN recalibrated on the KD batches (eval mode)."""
    net = zoo.assemble(zoo.space.parse(arch))
    return recalibrate_batchnorm(net, zoo.kd_data.batches()).eval()


def export_architecture(zoo: BlockZoo, arch: Architecture | dict | str) -> tuple[bytes, dict[str, Any]]:
    """(safetensors bytes, spec) of ``arch`` assembled from ``zoo``."""
    arch = zoo.space.parse(arch)
    net = assemble_for_export(zoo, arch)
    spec = architecture_spec(zoo, arch)
    tensors = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    return save(tensors, metadata={SPEC_KEY: json.dumps(spec)}), spec


def load_exported(path: Path | str) -> tuple[Network, dict[str, Any]]:
    """Rebuild an exported network (and its spec) from a file written by :func:`export_architecture`."""
    with safe_open(str(path), "pt") as fh:
        spec = json.loads((fh.metadata() or {})[SPEC_KEY])
    space = SearchSpace.from_dict(spec["space"])
    net = build_network(space, spec["arch"], spec["in_channels"], spec["num_classes"])
    net.load_state_dict(load_file(str(path)))
    return net.eval(), spec
