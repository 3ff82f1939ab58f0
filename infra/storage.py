"""The data directory: the one place artifacts live.

    <data>/datasets/<content_hash>/   normalised dataset stores (written by blockzoo.data)
    <data>/zoos/<zoo_id>/              a BlockZoo: reference weights (or the uploaded ones,
                                       reference.uploaded.safetensors), distilled blocks,
                                       exports/<arch_id>.{safetensors,pt2,onnx}, finetunes/<finetune_id>.safetensors,
                                       groundtruth/ (validation trainings: cache, checkpoints),
                                       validations/<validation_id>.png
    <data>/uploads/                    uploads in flight (deleted after import, even on failure)
    <data>/latency_tables/<id>.json    latency lookup tables (uploaded or measured by a job)

Rows store paths relative to the data directory; every path is resolved and checked to stay
inside it, so a crafted id or a row edited by hand cannot reach other files.
"""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

UPLOADED_REFERENCE = "reference.uploaded.safetensors"


class Storage:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().resolve()
        for sub in ("datasets", "zoos", "uploads", "latency_tables"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    @property
    def datasets_dir(self) -> Path:
        return self.root / "datasets"

    @property
    def uploads_dir(self) -> Path:
        return self.root / "uploads"

    def resolve(self, relative: str | Path) -> Path:
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"path {str(relative)!r} leaves the data directory")
        return path

    def uploaded_reference_path(self, zoo_path: str) -> Path:
        """Reference weights a user uploaded for a zoo: the build job takes them instead of training."""
        return self.resolve(f"{zoo_path}/{UPLOADED_REFERENCE}")

    def export_path(self, zoo_path: str, arch_id: str, file_format: str = "safetensors") -> Path:
        """An assembled architecture as ``file_format`` (safetensors, pt2, onnx), written once by an ``export`` job."""
        return self.resolve(f"{zoo_path}/exports/{arch_id}.{file_format}")

    def finetune_weights_path(self, zoo_path: str, finetune_id: str) -> Path:
        return self.resolve(f"{zoo_path}/finetunes/{finetune_id}.safetensors")

    def validation_plot_path(self, zoo_path: str, validation_id: str) -> Path:
        """A validation's plot, drawn by its report job (its trainings are cached in ``groundtruth/``)."""
        return self.resolve(f"{zoo_path}/validations/{validation_id}.png")

    def latency_table_path(self, table_id: str) -> Path:
        """A latency table's JSON file, written once (upload or measuring job), removed with its row."""
        return self.resolve(f"latency_tables/{table_id}.json")

    def relative(self, path: Path) -> str:
        return Path(path).resolve().relative_to(self.root).as_posix()

    def new_upload_path(self, suffix: str = "") -> Path:
        # The suffix is kept (readers sniff .gz, .zip, .tar.gz) but the name is ours.
        safe = "".join(c for c in suffix if c.isalnum() or c == ".")[-16:]
        return self.uploads_dir / f"{secrets.token_hex(12)}{safe}"

    def remove_tree(self, relative: str) -> None:
        path = self.resolve(relative)
        if path != self.root and path.exists():
            shutil.rmtree(path, ignore_errors=True)
