"""Datasets: built-ins and uploads imported once into a normalised uint8 store.

Import through this package; its modules split the work by concern:

- ``store``    the store itself: import, content hash, open, and the torch helpers
  (``to_tensor_split``, ``shuffled_batches``, ``augment``; torch is imported only when called);
- ``builtin``  the built-in datasets, their names, options and loaders;
- ``readers``  upload formats: detection and the readers;
- ``archives`` safe archive reading and ``DatasetError``, every refusal's type;
- ``decoded``  what a reader or a built-in loader hands to the store writer.

Importing this package does not import torch, so the API process can import datasets.
"""

from __future__ import annotations

from .archives import DEFAULT_MAX_EXPANDED_BYTES, DatasetError
from .builtin import BUILTIN_DATASETS, FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, BuiltinDataset, load_builtin
from .readers import UPLOAD_FORMATS, UploadFormat, read_upload
from .store import (
    DatasetInfo,
    DatasetStore,
    Split,
    augment,
    channel_stats,
    content_hash,
    import_builtin,
    import_file,
    open_store,
    shuffled_batches,
    to_tensor_split,
)

__all__ = [
    "BUILTIN_DATASETS", "BuiltinDataset", "DEFAULT_MAX_EXPANDED_BYTES", "DatasetError",
    "DatasetInfo", "DatasetStore", "FASHION_MNIST_CLASSES", "FASHION_MNIST_DIR", "Split",
    "UPLOAD_FORMATS", "UploadFormat", "augment", "channel_stats", "content_hash", "import_builtin",
    "import_file", "load_builtin", "open_store", "read_upload", "shuffled_batches",
    "to_tensor_split",
]
