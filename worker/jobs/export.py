"""``export``: one assembled architecture as a file, written once under the zoo's exports/.

The payload names the architecture and the format (``safetensors`` when absent; ``pt2`` and
``onnx`` take the zoo's dataset's image size, preprocessing inside). The export itself is
``blockzoo.pipeline.export_to_file`` (the CLI runs the same).
"""

from __future__ import annotations

from typing import Any

from blockzoo.pipeline import export_to_file
from blockzoo.progress import phase_ranges

from infra.repositories import zoos as zoos_repo
from worker.context import JobContext
from worker.jobs.common import load_zoo_row, open_zoo, record_blocks
from worker.registry import job_kind

PHASES = {"distilling": (0.0, 0.8), "assembling": (0.8, 1.0)}


@job_kind("export")
def export(ctx: JobContext) -> dict[str, Any]:
    zoo_row = load_zoo_row(ctx)
    arch = zoos_repo.space_of(zoo_row).parse(ctx.payload["arch_id"])
    file_format = ctx.payload.get("format", "safetensors")
    zoo = open_zoo(ctx, zoo_row)
    path = ctx.storage.export_path(zoo_row.path, arch.id, file_format)
    path.parent.mkdir(parents=True, exist_ok=True)
    result = export_to_file(zoo, arch, path, spec_file=True, progress=phase_ranges(ctx.progress, PHASES),
                            should_stop=ctx.should_stop, file_format=file_format,
                            image_shape=zoo_row.dataset.image_shape if file_format != "safetensors" else None,
                            on_distilled=lambda z, archs: record_blocks(ctx, zoo_row, z, list(enumerate(arch.expand))))
    return {**result, "path": ctx.storage.relative(path)}
