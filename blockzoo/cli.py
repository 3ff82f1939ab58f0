"""The ``blockzoo`` command line of the ML core (argparse; no web, database or queue imports).

Commands (each takes ``--json`` for one machine-readable JSON document on stdout)::

    blockzoo spaces [NAME|FILE.json]
    blockzoo cost --space mbv3-tiny ARCH... | --sample N
    blockzoo dataset import {digits|fashion-mnist|synthetic|PATH} --root DIR
    blockzoo reference train --dataset STORE_DIR --space mbv3-tiny --out reference.safetensors
    blockzoo zoo build --dataset STORE_DIR --reference reference.safetensors --out ZOO_DIR [--eager]
    blockzoo zoo info ZOO_DIR
    blockzoo score --zoo ZOO_DIR ARCH... | --sample N [--metrics naswot,synflow]
    blockzoo validate --zoo ZOO_DIR --dataset STORE_DIR [--k 10 --seeds 2] [--out report.json --plot plot.png]
    blockzoo export --zoo ZOO_DIR ARCH --out model.safetensors|model.pt2|model.onnx [--image-size HxW]

ARCH is a canonical id (``d42314-e6642.a8.442.6.888a``) or a JSON config
(``'{"depths": [...], "expand": [[...], ...]}'``). Progress bars go to stderr, results to stdout.
A user error (bad architecture, missing dataset, invalid recipe...) prints one line
``blockzoo <command>: error: ...`` on stderr and exits with status 2; set ``BLOCKZOO_TRACEBACK=1``
to see the traceback instead. Ctrl-C exits with 130; finished work (reference epochs, distilled
blocks) is on disk and a rerun resumes from it.

``build_parser()`` is shared with ``app.cli``, which adds the service commands to it. Torch is
imported only by the commands that need it, so ``spaces`` and ``cost`` answer instantly.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from .cost_model import cost
from .jsonable import json_safe
from .space import Architecture, SearchSpace, get_space, list_spaces, sample_architectures

if TYPE_CHECKING:
    from .data import DatasetStore
    from .zoo import BlockZoo

Command = Callable[[argparse.Namespace], int]

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A problem with what the user asked for; printed as one line, exit status 2."""


# ---------------------------------------------------------------------------------------------
# Output helpers


def _print_json(value: Any) -> None:
    print(json.dumps(json_safe(value), indent=2, allow_nan=False))


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain text table: text columns left-aligned, numbers right-aligned."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [all(_looks_numeric(row[i]) for row in cells[1:]) and len(cells) > 1 for i in range(len(headers))]
    lines = []
    for row in cells:
        parts = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric)]
        lines.append("  ".join(parts).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _looks_numeric(text: str) -> bool:
    if text == "-":  # a missing or non-finite value in a numeric column
        return True
    try:
        float(text.rstrip("kMG"))
    except ValueError:
        return False
    return True


def _count(n: int) -> str:
    """A compact count for tables (exact values are in --json)."""
    if n >= 1_000_000:
        return f"{n / 1e6:.2f}M"
    if n >= 10_000:
        return f"{n / 1e3:.1f}k"
    return str(n)


def _fmt(value: Optional[float], spec: str = ".4f") -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return format(value, spec)


def _say(message: str) -> None:
    """Status lines go to stderr so that stdout stays the result."""
    print(message, file=sys.stderr, flush=True)


class ProgressBar:
    """A tqdm bar on stderr fed by the core's ``progress(fraction, message)`` callbacks.

    ``enabled=None`` lets tqdm decide (on for a terminal, off for logs and pipes).
    """

    def __init__(self, desc: str, enabled: Optional[bool] = None, file: Any = None) -> None:
        from tqdm import tqdm

        disable = None if enabled is None else not enabled
        self._bar = tqdm(total=1.0, desc=desc, file=file or sys.stderr, disable=disable,
                         bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}",
                         dynamic_ncols=True, leave=True)

    def __call__(self, fraction: float, message: str) -> None:
        self._bar.update(max(0.0, fraction - self._bar.n))
        self._bar.set_postfix_str(message, refresh=True)

    def close(self) -> None:
        self._bar.close()

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _bar(args: argparse.Namespace, desc: str) -> ProgressBar:
    return ProgressBar(desc, enabled=False if args.no_progress else None)


# ---------------------------------------------------------------------------------------------
# Argument readers


def _read_space(text: str) -> SearchSpace:
    """A preset name, or a JSON file holding a custom space (``SearchSpace.to_dict()`` form)."""
    if text in list_spaces():
        return get_space(text)
    path = Path(text)
    if path.suffix == ".json" and path.is_file():
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise CliError(f"space file {path} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise CliError(f"space file {path} must hold one JSON object (a search space)")
        return SearchSpace.from_dict(data)
    raise CliError(f"unknown search space {text!r}; known spaces: {', '.join(list_spaces())}, "
                   "or a path to a .json space definition")


def _read_arch(space: SearchSpace, text: str) -> Architecture:
    """A canonical id or a JSON config; errors name the argument and (from the space) the stage."""
    obj: Any = text
    if text.lstrip().startswith("{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CliError(f"architecture {text!r} is not valid JSON: {exc}") from None
    try:
        return space.parse(obj)
    except ValueError as exc:
        raise CliError(f"architecture {text!r}: {exc}") from None


def _architectures(space: SearchSpace, args: argparse.Namespace) -> list[Architecture]:
    if args.archs and args.sample is not None:
        raise CliError("give architectures or --sample N, not both")
    if args.sample is not None:
        if args.sample < 1:
            raise CliError("--sample must be at least 1")
        return sample_architectures(space, args.sample, args.seed)
    if not args.archs:
        raise CliError("give one or more architectures (canonical ids or JSON configs) or --sample N")
    return [_read_arch(space, text) for text in args.archs]


def _open_dataset(path: Path) -> "DatasetStore":
    from .data import open_store

    if not path.is_dir():
        raise CliError(f"no dataset store at {path}; create one with `blockzoo dataset import ... --root DIR` "
                       "(it prints the store's path)")
    return open_store(path)


def _open_zoo(path: Path) -> "BlockZoo":
    from .zoo import BlockZoo

    if not (path / "manifest.json").is_file():
        raise CliError(f"no block zoo at {path} (manifest.json missing); create one with `blockzoo zoo build`")
    from .training import default_device

    return BlockZoo.open(path, device=default_device())


def _overrides(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    """Recipe fields the user set; the rest keep the recipe's documented defaults."""
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def _parse_options(items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; values are read as JSON when they parse (numbers), else kept as text."""
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"--option {item!r}: expected KEY=VALUE, e.g. num_images=500")
        try:
            options[key.replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            options[key.replace("-", "_")] = value
    return options


def _safetensors_metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as fh:
            return dict(fh.metadata() or {})
    except Exception as exc:  # safetensors raises its own error type for a non-safetensors file
        raise CliError(f"{path} is not a readable safetensors file: {exc}") from None


# ---------------------------------------------------------------------------------------------
# spaces, cost


def cmd_spaces(args: argparse.Namespace) -> int:
    spaces = [_read_space(args.name)] if args.name else [get_space(n) for n in list_spaces()]
    if args.json:
        _print_json(spaces[0].to_dict() if args.name else [s.to_dict() for s in spaces])
        return 0
    rows = [(s.name, f"{s.input_size}x{s.input_size}", "/".join(map(str, s.widths)),
             ",".join(map(str, s.depth_choices)), ",".join(map(str, s.expand_choices)), f"{s.size:.2e}")
            for s in spaces]
    print(_table(("space", "input", "stage widths", "depths", "expand ratios", "architectures"), rows))
    for s in spaces:
        if s.description:
            print(f"\n{s.name}: {s.description}\n  reference: {s.reference.id}   smallest: {s.smallest.id}")
    return 0


def cmd_cost(args: argparse.Namespace) -> int:
    space = _read_space(args.space)
    archs = _architectures(space, args)
    items = []
    for arch in archs:
        c = cost(space, arch, in_channels=args.in_channels, num_classes=args.num_classes)
        items.append({"arch_id": arch.id, "architecture": arch.to_dict(), "macs": c.macs, "params": c.params})
    if args.json:
        _print_json({"space": space.name, "in_channels": args.in_channels, "num_classes": args.num_classes,
                     "items": items})
        return 0
    print(_table(("architecture", "MACs", "params"),
                 [(i["arch_id"], _count(i["macs"]), _count(i["params"])) for i in items]))
    return 0


# ---------------------------------------------------------------------------------------------
# dataset import


def cmd_dataset_import(args: argparse.Namespace) -> int:
    from .data import BUILTIN_DATASETS, import_builtin, import_file

    options = _parse_options(args.option)
    if args.train_limit is not None:
        options["train_limit"] = args.train_limit
    started = time.perf_counter()
    if args.source in BUILTIN_DATASETS:
        if args.format is not None:
            raise CliError(f"--format is for files; {args.source!r} is a built-in dataset")
        info = import_builtin(args.source, args.root, seed=args.seed, **options)
    elif Path(args.source).is_file():
        if options:
            raise CliError("--train-limit and --option apply to built-in datasets only")
        info = import_file(args.source, args.root, format=args.format, name=args.name, seed=args.seed)
    else:
        raise CliError(f"{args.source!r} is neither a built-in dataset ({', '.join(sorted(BUILTIN_DATASETS))}) "
                       "nor an existing file")
    seconds = time.perf_counter() - started
    if args.json:
        _print_json({**info.to_dict(), "seconds": seconds})
        return 0
    h, w, c = info.image_shape
    print(f"imported {info.name} ({info.format}): {info.num_train} train / {info.num_test} test images, "
          f"{info.num_classes} classes, {h}x{w}x{c}, in {seconds:.1f} s")
    print(f"store: {info.path}")
    print(f"hash:  {info.content_hash}")
    return 0


# ---------------------------------------------------------------------------------------------
# reference train

TRAIN_FIELDS = ("epochs", "batch_size", "lr", "momentum", "weight_decay", "label_smoothing", "warmup_epochs",
                "augment", "flip", "seed")


def _device(name: str) -> Any:
    import torch

    if name == "auto":
        return None  # the core picks CUDA when present
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise CliError("--device cuda: no CUDA device is available; use --device cpu")
    return torch.device(name)


def cmd_reference_train(args: argparse.Namespace) -> int:
    from .reference import train_reference
    from .training import TrainRecipe

    space = _read_space(args.space)
    recipe = TrainRecipe(**_overrides(args, TRAIN_FIELDS))
    store = _open_dataset(args.dataset)
    device = _device(args.device)
    out = Path(args.out)
    checkpoint = out.with_name(out.stem + ".checkpoint.pt")
    if checkpoint.is_file():
        _say(f"resuming from {checkpoint}")
    with _bar(args, "reference") as bar:
        result = train_reference(space, store, recipe, out, device=device, progress=bar)
    body = {**result.to_dict(), "space": space.name, "dataset": str(args.dataset), "recipe": recipe.to_dict()}
    if args.json:
        _print_json(body)
        return 0
    print(f"reference {space.reference.id} ({space.name}) -> {result.path}")
    print(f"test accuracy {result.test_accuracy:.4f}  (train, last epoch: {result.train_accuracy:.4f})")
    print(f"{result.steps} steps in {result.seconds:.1f} s ({result.seconds / 60:.1f} min)")
    print("recipe: " + ", ".join(f"{k}={v}" for k, v in recipe.to_dict().items()))
    if result.warning:
        _say(f"warning: {result.warning}")
    return 0


# ---------------------------------------------------------------------------------------------
# zoo build, zoo info

DISTILL_FIELDS = ("batches", "batch_size", "optimizer", "lr", "momentum", "weight_decay", "seed", "remap_order",
                  "init", "heldout_batches", "chunk_size", "engine")


def _block_counts(zoo: "BlockZoo") -> list[dict[str, int]]:
    """Per stage: blocks stored on disk and candidate blocks the space has."""
    counts = []
    for m in range(zoo.space.num_stages):
        stored = sum(1 for _ in (zoo.root / "blocks" / f"s{m + 1}").glob("*.safetensors"))
        counts.append({"stage": m + 1, "stored": stored, "candidates": len(zoo.space.stage_blocks(m))})
    return counts


def _zoo_summary(zoo: "BlockZoo") -> dict[str, Any]:
    counts = _block_counts(zoo)
    return {
        "path": str(zoo.root), "space": zoo.space.name, "in_channels": zoo.in_channels,
        "num_classes": zoo.num_classes, "dataset_hash": zoo.manifest.get("dataset_hash", ""),
        "reference_sha256": zoo.manifest["reference"]["sha256"], "recipe": zoo.recipe.to_dict(),
        "blocks": counts, "blocks_stored": sum(c["stored"] for c in counts),
        "blocks_total": sum(c["candidates"] for c in counts),
    }


def _print_zoo_summary(summary: dict[str, Any]) -> None:
    print(f"zoo {summary['path']}: space {summary['space']}, {summary['in_channels']}-channel input, "
          f"{summary['num_classes']} classes")
    print(f"blocks stored: {summary['blocks_stored']} of {summary['blocks_total']} candidate blocks")
    print(_table(("stage", "stored", "candidates"),
                 [(c["stage"], c["stored"], c["candidates"]) for c in summary["blocks"]]))
    print("distill recipe: " + ", ".join(f"{k}={v}" for k, v in summary["recipe"].items()))


def _create_zoo(args: argparse.Namespace, out: Path) -> "BlockZoo":
    from .distill import DistillRecipe
    from .zoo import BlockZoo

    if args.dataset is None or args.reference is None:
        raise CliError("a new zoo needs --dataset STORE_DIR and --reference REFERENCE.safetensors")
    if not Path(args.reference).is_file():
        raise CliError(f"no reference file at {args.reference}; train one with `blockzoo reference train`")
    meta = _safetensors_metadata(Path(args.reference))
    space = _read_space(args.space or meta.get("space") or "")
    if meta.get("space") and meta["space"] != space.name:
        raise CliError(f"the reference {args.reference} was trained for space {meta['space']!r}, not {space.name!r}")
    recipe = DistillRecipe(**_overrides(args, DISTILL_FIELDS))
    store = _open_dataset(args.dataset)
    reference_recipe = json.loads(meta["recipe"]) if "recipe" in meta else None
    try:
        from .training import default_device

        return BlockZoo.create(out, space, store, args.reference, recipe, reference_recipe=reference_recipe,
                               device=default_device())
    except RuntimeError as exc:  # load_state_dict: the weights do not fit this space/dataset
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CliError(f"the reference {args.reference} does not fit space {space.name!r} with "
                       f"{store.image_shape[2]}-channel images and {store.num_classes} classes ({first})") from None


def cmd_zoo_build(args: argparse.Namespace) -> int:
    out = Path(args.out)
    started = time.perf_counter()
    if (out / "manifest.json").is_file():
        if not args.resume:
            raise CliError(f"{out} already holds a block zoo; pass --resume to continue it (its own recipe is "
                           "kept) or choose another --out")
        zoo = _open_zoo(out)
        _say(f"resuming the zoo in {out}")
    else:
        zoo = _create_zoo(args, out)
    distilled = 0
    if args.build == "eager":
        with _bar(args, "distilling") as bar:
            distilled = zoo.build_eager(progress=bar)
    summary = {**_zoo_summary(zoo), "build": args.build, "blocks_distilled": distilled,
               "seconds": time.perf_counter() - started}
    if args.json:
        _print_json(summary)
        return 0
    _print_zoo_summary(summary)
    how = "lazy: blocks are distilled when `score` or `export` first needs them" if args.build == "lazy" else \
        f"eager: distilled {distilled} blocks"
    print(f"{how}; {summary['seconds']:.1f} s")
    return 0


def cmd_zoo_info(args: argparse.Namespace) -> int:
    summary = _zoo_summary(_open_zoo(args.zoo_dir))
    if args.json:
        _print_json(summary)
    else:
        _print_zoo_summary(summary)
    return 0


# ---------------------------------------------------------------------------------------------
# score


def _zero_cost_metrics(text: Optional[str]) -> list[str]:
    """The requested baseline metrics, checked before any slow work starts."""
    from .pipeline import zero_cost_metrics

    try:
        return zero_cost_metrics(n.strip() for n in (text or "").split(",") if n.strip())
    except ValueError as exc:
        raise CliError(str(exc)) from None


class _PhaseBars:
    """One progress bar per phase of a pipeline job, opened when the phase starts."""

    def __init__(self, args: argparse.Namespace) -> None:
        self._args = args
        self._phase: Optional[str] = None
        self._bar: Optional[ProgressBar] = None

    def __call__(self, phase: str, fraction: float, message: str) -> None:
        if phase != self._phase:
            self.close()
            self._phase, self._bar = phase, _bar(self._args, phase)
        assert self._bar is not None
        self._bar(fraction, message)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        self._phase, self._bar = None, None

    def __enter__(self) -> "_PhaseBars":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def cmd_score(args: argparse.Namespace) -> int:
    from .pipeline import PROXY_METRICS, score_on_zoo

    metrics = _zero_cost_metrics(args.metrics)
    zoo = _open_zoo(args.zoo)
    archs = _architectures(zoo.space, args)
    started = time.perf_counter()
    with _PhaseBars(args) as bars:
        run = score_on_zoo(zoo, archs, metrics, progress=bars)
    items = []
    for arch in archs:
        c = cost(zoo.space, arch, in_channels=zoo.in_channels, num_classes=zoo.num_classes)
        items.append({"arch_id": arch.id, **{m: run.values[(arch.id, m)] for m in PROXY_METRICS},
                      "architecture": arch.to_dict(), "macs": c.macs, "params": c.params,
                      "metrics": {m: run.values[(arch.id, m)] for m in metrics}})
    seconds = time.perf_counter() - started
    distilled = run.blocks_distilled
    if args.json:
        _print_json({"zoo": str(zoo.root), "items": items, "metrics": metrics, "blocks_distilled": distilled,
                     "seconds": seconds})
        return 0
    headers = ["architecture", "proxy acc", "kd loss", "held-out acc", "MACs", "params", *metrics]
    rows = [[i["arch_id"], _fmt(i["proxy_accuracy"]), _fmt(i["kd_loss"], ".4g"), _fmt(i["heldout_accuracy"]),
             _count(i["macs"]), _count(i["params"]), *(_fmt(i["metrics"][m], ".4g") for m in metrics)]
            for i in items]
    print(_table(headers, rows))
    print(f"{len(items)} architecture(s) scored in {seconds:.1f} s ({distilled} block(s) distilled)")
    return 0


# ---------------------------------------------------------------------------------------------
# export


_EXPORT_SUFFIXES = {".pt2": "pt2", ".onnx": "onnx", ".safetensors": "safetensors"}
_LOAD_HINTS = {
    "safetensors": "load it with blockzoo.export.load_exported(path) -> (network, spec)",
    "pt2": "load it with torch alone: torch.export.load(path).module()(uint8 NHWC images) -> logits "
           "(docs/deploy-model.md)",
    "onnx": "run it with onnxruntime alone: InferenceSession(path).run(None, {'images': uint8 NHWC images}) "
            "-> logits (docs/deploy-model.md)",
}


def _image_size(text: Optional[str], channels: int) -> Optional[tuple[int, int, int]]:
    """``--image-size`` as (H, W, C): "28" or "28x32"."""
    if text is None:
        return None
    try:
        sizes = [int(v) for v in text.lower().split("x")]
    except ValueError:
        sizes = []
    if len(sizes) not in (1, 2) or min(sizes) < 1:
        raise CliError(f"--image-size {text!r}: expected N or HxW, e.g. 28 or 28x32")
    height, width = sizes if len(sizes) == 2 else sizes * 2
    return height, width, channels


def cmd_export(args: argparse.Namespace) -> int:
    from .pipeline import export_to_file

    zoo = _open_zoo(args.zoo)
    arch = _read_arch(zoo.space, args.arch)
    out = Path(args.out)
    file_format = args.format or _EXPORT_SUFFIXES.get(out.suffix.lower(), "safetensors")
    if file_format == "safetensors" and args.image_size:
        raise CliError("--image-size is for --format pt2 or onnx (safetensors holds the network's weights only)")
    with _PhaseBars(args) as bars:
        exported = export_to_file(zoo, arch, out, progress=bars, file_format=file_format,
                                  image_shape=_image_size(args.image_size, zoo.in_channels))
    body = {"path": str(out), "format": file_format, "bytes": exported["bytes"], "sha256": exported["sha256"],
            "arch_id": arch.id, "spec": exported["spec"], **({"check": exported["check"]} if "check" in exported else {})}
    if args.json:
        _print_json(body)
        return 0
    print(f"exported {arch.id} -> {out} ({file_format}, {body['bytes'] / 1024:.1f} KiB, "
          f"sha256 {body['sha256'][:16]}...)")
    if "check" in body:
        print(f"checked against the torch model on {body['check']['images']} images: max |logit difference| "
              f"{body['check']['max_abs_diff']:.2g}")
    print(_LOAD_HINTS[file_format])
    return 0


# ---------------------------------------------------------------------------------------------
# latency


def cmd_latency_measure(args: argparse.Namespace) -> int:
    """Measure a complete latency table on this machine (no server, no dataset) and write it."""
    from .latency import measure_calibrated_table
    from .latency.table import Timing, count_blocks

    space = _read_space(args.space)
    for name in ("in_channels", "num_classes", "batch_size"):
        if getattr(args, name) < 1:
            raise CliError(f"--{name.replace('_', '-')} must be at least 1")
    if args.architectures and args.architectures < 2 and args.coverage != 0.5:
        raise CliError("calibrating to a --coverage other than 0.5 needs --architectures 2 or more")
    device = _latency_device(args.device)
    timing = Timing(warmup=args.warmup, repeats=args.repeats, rounds=args.rounds, statistic=args.statistic,
                    clock=args.clock)
    started = time.perf_counter()
    with _bar(args, f"latency of {count_blocks(space) + 2} parts") as bar:
        table = measure_calibrated_table(space, args.in_channels, args.num_classes, batch_size=args.batch_size,
                                         device=device, timing=timing, architectures=args.architectures,
                                         coverage=args.coverage, seed=args.seed, progress=bar)
    table.save(args.out)
    seconds = time.perf_counter() - started
    fastest, largest = table.fastest(), space.reference
    summary = {"out": str(args.out), "space": space.name, "device": table.device, "machine": table.machine,
               "blocks": len(table), "batch_size": table.batch_size, "scale": table.scale,
               "calibration": table.calibration.to_dict() if table.calibration else None,
               "fastest": {"arch_id": fastest.id, "latency_ms": table.predict(fastest)},
               "reference": {"arch_id": largest.id, "latency_ms": table.predict(largest)}, "seconds": seconds}
    if args.json:
        _print_json(summary)
        return 0
    print(f"measured {len(table)} blocks, the prefix and the head of '{space.name}' at batch {table.batch_size} "
          f"on [{table.machine}] in {seconds:.0f} s")
    if table.calibration:
        print(f"calibration: scale {table.scale:.3f} from {len(table.calibration.points)} networks timed end to "
              f"end (median measured/summed {table.calibration.median_ratio:.3f}, coverage "
              f"{table.calibration.coverage:g})")
    else:
        print("no calibration (--architectures 0): predictions are plain sums of the parts, which usually run "
              "below the measured latency of whole networks")
    print(f"predicted latency: {summary['fastest']['latency_ms']:.3f} ms (fastest, {fastest.id}) to "
          f"{summary['reference']['latency_ms']:.3f} ms (largest, {largest.id})")
    print(f"wrote {args.out}; upload it with POST /v1/latency-tables (docs/latency.md)")
    return 0


def _latency_device(text: str) -> str:
    import torch

    if text == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(text)
    except RuntimeError as exc:
        raise CliError(f"--device {text!r}: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CliError(f"--device {text}: CUDA is not available on this machine; measure where the network runs")
    if device.type not in ("cpu", "cuda"):
        raise CliError(f"--device {text}: use cpu, cuda, cuda:N or auto")
    return str(device)


# ---------------------------------------------------------------------------------------------
# Parser


def _guarded(command: Command) -> Command:
    """Run ``command``; user errors become one line on stderr and exit status 2 (no traceback)."""
    from .data import DatasetError  # torch-free package

    def run(args: argparse.Namespace) -> int:
        name = getattr(args, "command_path", "blockzoo")
        try:
            _set_threads(getattr(args, "threads", None))
            return int(command(args) or 0)
        except BrokenPipeError:  # e.g. `blockzoo cost ... | head`: the reader left; stay quiet
            _silence_stdout()
            return 1
        except KeyboardInterrupt:
            print(f"\n{name}: interrupted; finished work is saved and a rerun resumes from it", file=sys.stderr)
            return EXIT_INTERRUPTED
        except (CliError, DatasetError, ValueError, OSError) as exc:
            if os.environ.get("BLOCKZOO_TRACEBACK"):
                raise
            print(f"{name}: error: {_error_text(exc)}", file=sys.stderr)
            return EXIT_USER_ERROR

    run.__name__ = command.__name__
    run.__doc__ = command.__doc__
    return run


def _set_threads(threads: int | None) -> None:
    """``--threads``, else the rule of ``blockzoo.threads`` for one job; torch is not imported for it."""
    from .threads import apply_threads, default_threads

    if threads or "torch" in sys.modules:
        apply_threads(threads or default_threads())
    else:  # read by torch when a command first imports it; commands without torch never pay for it
        os.environ.setdefault("OMP_NUM_THREADS", str(default_threads()))


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a file descriptor (captured in tests)
        pass
    finally:
        os.close(devnull)


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.strerror}: {exc.filename}"
    return str(exc) or type(exc).__name__


def _group(parser: argparse.ArgumentParser) -> Command:
    """A command group called without its action: show its help, exit 2."""

    def show_help(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return EXIT_USER_ERROR

    return show_help


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    common.add_argument("--no-progress", action="store_true",
                        help="no progress bars (by default they show when stderr is a terminal)")
    common.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: $OMP_NUM_THREADS, else half the available cores)")
    return common



def _add_train_recipe_args(p: argparse.ArgumentParser) -> None:
    """Options overriding fields of a TrainRecipe; unset ones keep the recipe's defaults."""
    p.add_argument("--epochs", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None, help="learning rate for batches of 128 (scaled linearly)")
    p.add_argument("--momentum", type=float, default=None)
    p.add_argument("--weight-decay", type=float, default=None)
    p.add_argument("--label-smoothing", type=float, default=None)
    p.add_argument("--warmup-epochs", type=float, default=None)
    p.add_argument("--no-augment", dest="augment", action="store_const", const=False, default=None,
                   help="no random crop")
    p.add_argument("--no-flip", dest="flip", action="store_const", const=False, default=None,
                   help="no horizontal flip (digits, text)")

def _add_command(sub: Any, name: str, command: Command, parents: list[argparse.ArgumentParser], path: str,
                 **kwargs: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(name, parents=parents, **kwargs)
    p.set_defaults(func=_guarded(command), command_path=f"blockzoo {path}")
    return p


def _add_arch_selection(p: argparse.ArgumentParser, nargs: str = "*") -> None:
    p.add_argument("archs", nargs=nargs, metavar="ARCH",
                   help='canonical id (d42314-e6642.a8.442.6.888a) or JSON config {"depths": [...], "expand": [...]}')
    p.add_argument("--sample", type=int, default=None, metavar="N", help="instead of ARCH: N seeded random samples")
    p.add_argument("--seed", type=int, default=0, help="seed of --sample (default 0)")


def _add_spaces_and_cost(sub: Any, common: argparse.ArgumentParser) -> None:
    p = _add_command(sub, "spaces", cmd_spaces, [common], "spaces", help="list the search-space presets",
                     description="List the search-space presets; with NAME (or a .json file) show one; "
                                 "--json dumps its definition.")
    p.add_argument("name", nargs="?", metavar="NAME", help="a preset name or a .json space definition")

    p = _add_command(sub, "cost", cmd_cost, [common], "cost", help="analytic MACs and parameters (no torch)",
                     description="Exact MACs and parameter counts of architectures, from the analytic cost model.")
    p.add_argument("--space", default="mbv3-tiny", help="preset name or .json space definition (default mbv3-tiny)")
    _add_arch_selection(p)
    p.add_argument("--in-channels", type=int, default=3, help="input image channels (default 3)")
    p.add_argument("--num-classes", type=int, default=10, help="classes of the classifier (default 10)")


def _add_dataset(sub: Any, common: argparse.ArgumentParser) -> None:
    group = sub.add_parser("dataset", help="import datasets into a store", description="Dataset stores.")
    actions = group.add_subparsers(dest="action", metavar="ACTION")
    group.set_defaults(func=_group(group))
    p = _add_command(actions, "import", cmd_dataset_import, [common], "dataset import",
                     help="import a built-in dataset or a file",
                     description="Import a built-in dataset (digits, fashion-mnist, synthetic) or an upload "
                                 "file (NPZ, IDX archive, ImageFolder .zip/.tar.gz, CIFAR binary) into a "
                                 "content-addressed store under --root; prints the store path and its hash.")
    p.add_argument("source", metavar="{digits|fashion-mnist|synthetic|PATH}")
    p.add_argument("--root", type=Path, required=True, help="directory that holds dataset stores")
    p.add_argument("--train-limit", type=int, default=None,
                   help="fashion-mnist: keep a seeded, class-stratified subset of N training images")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="other built-in option, e.g. num_images=500 for synthetic (repeatable)")
    p.add_argument("--format", default=None, help="files: force a reader (npz, idx, imagefolder, cifar-10, cifar-100)")
    p.add_argument("--name", default=None, help="files: dataset name (default: from the file name)")
    p.add_argument("--seed", type=int, default=0, help="seed of subsets, synthetic images and test splits")


def _add_reference(sub: Any, common: argparse.ArgumentParser) -> None:
    group = sub.add_parser("reference", help="train the reference network", description="The reference network.")
    actions = group.add_subparsers(dest="action", metavar="ACTION")
    group.set_defaults(func=_group(group))
    p = _add_command(actions, "train", cmd_reference_train, [common], "reference train",
                     help="train the space's largest architecture on a dataset store",
                     description="Train the reference (the largest architecture) with blockzoo.training's "
                                 "TrainRecipe; unset options keep its defaults (docs/cli.md). A killed run "
                                 "resumes from OUT's checkpoint.")
    p.add_argument("--dataset", type=Path, required=True, help="dataset store directory")
    p.add_argument("--space", default="mbv3-tiny", help="preset name or .json space definition (default mbv3-tiny)")
    p.add_argument("--out", type=Path, required=True, help="reference weights (.safetensors)")
    _add_train_recipe_args(p)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")


def _add_zoo(sub: Any, common: argparse.ArgumentParser) -> None:
    group = sub.add_parser("zoo", help="build and inspect block zoos", description="Block zoos.")
    actions = group.add_subparsers(dest="action", metavar="ACTION")
    group.set_defaults(func=_group(group))
    p = _add_command(actions, "build", cmd_zoo_build, [common], "zoo build",
                     help="create a block zoo (lazy) or distil all its blocks (eager)",
                     description="Create a block zoo from a dataset store and a trained reference. Lazy (the "
                                 "default) distils blocks when an architecture first needs them; eager distils "
                                 "every candidate block now. Unset recipe options keep DistillRecipe's defaults.")
    p.add_argument("--dataset", type=Path, default=None, help="dataset store directory")
    p.add_argument("--reference", type=Path, default=None, help="reference weights (.safetensors)")
    p.add_argument("--space", default=None, help="preset or .json space (default: the reference's)")
    p.add_argument("--out", type=Path, required=True, help="zoo directory")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--lazy", dest="build", action="store_const", const="lazy", help="(default)")
    mode.add_argument("--eager", dest="build", action="store_const", const="eager")
    p.set_defaults(build="lazy")
    p.add_argument("--resume", action="store_true", help="continue the zoo already in --out")
    p.add_argument("--batches", type=int, default=None, help="T, KD batches (default 20)")
    p.add_argument("--batch-size", type=int, default=None, help="KD batch size (default 64)")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--momentum", type=float, default=None)
    p.add_argument("--weight-decay", type=float, default=None)
    p.add_argument("--optimizer", choices=("sgd", "adam"), default=None)
    p.add_argument("--remap-order", choices=("first", "l1"), default=None)
    p.add_argument("--init", choices=("remap", "random"), default=None, help="remap (PR+KD) or random (KD only)")
    p.add_argument("--heldout-batches", type=int, default=None)
    p.add_argument("--chunk-size", type=int, default=None, help="blocks distilled together (memory knob)")
    p.add_argument("--engine", choices=("stacked", "loop"), default=None,
                   help="KD engine: stacked (default, a stage's blocks as one computation) or loop")
    p.add_argument("--seed", type=int, default=None, help="picks the KD batches")

    p = _add_command(actions, "info", cmd_zoo_info, [common], "zoo info", help="summarise a zoo",
                     description="Space, recipe and stored blocks per stage of a zoo.")
    p.add_argument("zoo_dir", type=Path, metavar="ZOO_DIR")


def _add_score_and_export(sub: Any, common: argparse.ArgumentParser) -> None:
    p = _add_command(sub, "score", cmd_score, [common], "score", help="proxy scores of architectures",
                     description="Assemble each architecture from the zoo (distilling missing blocks) and "
                                 "report proxy accuracy, KD loss, held-out accuracy, MACs and params.")
    p.add_argument("--zoo", type=Path, required=True, help="zoo directory")
    _add_arch_selection(p)
    p.add_argument("--metrics", default=None,
                   help="comma-separated zero-cost baselines (gradnorm, snip, fisher, synflow, naswot, l2norm; "
                        "the API's metrics), on the zoo's KD batches; MACs and params are always reported")

    p = _add_command(sub, "export", cmd_export, [common], "export", help="export an assembled architecture",
                     description="Write the architecture assembled from the zoo (BN recalibrated): as safetensors "
                                 "with its build spec in the header (load with blockzoo.export.load_exported), or "
                                 "as a whole model for plain torch (.pt2) or onnxruntime (.onnx).")
    p.add_argument("--zoo", type=Path, required=True, help="zoo directory")
    p.add_argument("arch", metavar="ARCH", help="canonical id or JSON config")
    p.add_argument("--out", type=Path, required=True, help="output file (.safetensors, .pt2 or .onnx)")
    p.add_argument("--format", choices=("safetensors", "pt2", "onnx"), default=None,
                   help="safetensors: weights for blockzoo.build_network; pt2 (torch.export) or onnx: the whole "
                        "model, preprocessing inside, for plain torch / onnxruntime (default: from --out's suffix, "
                        "else safetensors)")
    p.add_argument("--image-size", default=None, metavar="HxW",
                   help="pt2/onnx: the size of the images the model takes, resized inside to the space's input "
                        "size (default: the input size itself, no resize)")


def _add_latency(sub: Any, common: argparse.ArgumentParser) -> None:
    group = sub.add_parser("latency", help="measure latency lookup tables", description="Latency lookup tables.")
    actions = group.add_subparsers(dest="action", metavar="ACTION")
    group.set_defaults(func=_group(group))
    p = _add_command(actions, "measure", cmd_latency_measure, [common], "latency measure",
                     help="time every block of a space on this machine and write a latency table",
                     description="Time the prefix, the head and every candidate block of a space on this "
                                 "machine (no server, no dataset), then K random networks end to end to "
                                 "calibrate the table, and write it as JSON: run it on the device that will run "
                                 "the networks and upload the file (docs/latency.md).")
    p.add_argument("--space", default="mbv3-tiny", help="preset name or .json space definition (default mbv3-tiny)")
    p.add_argument("--in-channels", type=int, default=3, help="input image channels (default 3)")
    p.add_argument("--num-classes", type=int, default=10, help="classes of the classifier (default 10)")
    p.add_argument("--batch-size", type=int, default=1, help="images per forward pass (default 1)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, or auto")
    p.add_argument("--out", type=Path, required=True, help="table file to write (.json)")
    p.add_argument("--architectures", type=int, default=20, metavar="K",
                   help="random networks timed end to end to calibrate the table (default 20; 0: none)")
    p.add_argument("--coverage", type=float, default=0.95,
                   help="share of networks that should run no slower than predicted (default 0.95; "
                        "0.5: the median, a point estimate)")
    p.add_argument("--seed", type=int, default=0, help="seed of the calibration networks (default 0)")
    p.add_argument("--warmup", type=int, default=5, help="untimed runs per module (default 5)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per module per round (default 5)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    p.add_argument("--statistic", choices=("min", "median"), default="min", help="of the timed runs (default min)")
    p.add_argument("--clock", choices=("wall", "thread"), default="wall",
                   help="wall (default) or thread (CPU time of one thread: steadier on a busy CPU; needs "
                        "--threads 1)")


def build_parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    """The ``blockzoo`` parser and its subcommand registry (``app.cli`` adds service commands to it)."""
    parser = argparse.ArgumentParser(
        prog="blockzoo",
        description="BlockZoo: rank architectures with parameter remapping and few-batch block distillation.",
        epilog="Typical run: dataset import -> reference train -> zoo build -> score -> export.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = _common()
    _add_spaces_and_cost(sub, common)
    _add_dataset(sub, common)
    _add_reference(sub, common)
    _add_zoo(sub, common)
    _add_score_and_export(sub, common)
    _add_latency(sub, common)
    from .cli_validate import add_validate  # its own module: it imports this one's helpers

    add_validate(sub, common)
    return parser, sub


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser, _ = build_parser()
    try:
        args = parser.parse_args(None if argv is None else list(argv))
    except SystemExit as exc:  # argparse: 2 on a usage error (message already printed), 0 for --help
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_USER_ERROR)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USER_ERROR
    from .allocator import keep_freed_memory

    keep_freed_memory()  # scoring and training churn through large tensors (blockzoo/allocator.py)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
