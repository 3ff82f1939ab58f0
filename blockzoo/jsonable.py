"""Values made fit for strict JSON: non-finite floats become null.

``json.dumps`` writes NaN and ±inf as bare words that no JSON parser accepts, and PostgreSQL's
JSON type refuses them; a proxy value can be non-finite (e.g. ``heldout_accuracy`` without
held-out batches, a zero-cost metric that diverged), so every value leaving the core for JSON
or a database row goes through here. Torch-free.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional


def finite_or_none(value: float) -> Optional[float]:
    """``value`` as a float, or None when it is NaN or ±inf."""
    value = float(value)
    return value if math.isfinite(value) else None


def json_safe(value: Any) -> Any:
    """``value`` with NaN/±inf replaced by None, tuples as lists, paths as text, keys as text."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
