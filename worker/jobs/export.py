"""``export``: the weights of one assembled architecture, written once under the zoo's exports/."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

from app.services.exports import export_path
from app.services.zoos import space_of
from worker.context import JobContext
from worker.jobs.common import load_zoo_row, open_zoo, record_blocks, scaled
from worker.registry import job_kind


@job_kind("export")
def export(ctx: JobContext) -> dict[str, Any]:
    from blockzoo.export import export_architecture
    from blockzoo.zoo import file_sha256

    zoo_row = load_zoo_row(ctx)
    arch = space_of(zoo_row).parse(ctx.payload["arch_id"])
    zoo = open_zoo(ctx, zoo_row)
    ctx.progress(0.0, f"distilling the blocks of {arch.id} if missing")
    zoo.ensure_blocks([arch], progress=scaled(ctx, 0.0, 0.8), should_stop=ctx.should_stop)
    record_blocks(ctx, zoo_row, zoo, list(enumerate(arch.expand)))
    ctx.check_stop()
    ctx.progress(0.85, f"assembling {arch.id}")
    data, spec = export_architecture(zoo, arch)
    path = export_path(ctx.storage, zoo_row, arch.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)  # readers see the whole file or none
    path.with_suffix(".json").write_text(json.dumps(spec, indent=2, default=str))
    return {"arch_id": arch.id, "sha256": file_sha256(path), "bytes": path.stat().st_size,
            "path": ctx.storage.relative(path), "spec": spec}
