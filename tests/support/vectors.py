"""The balancers' reference vectors (partition choices and hash values of other clients).

The reference copy lives in the workspace's shared/vectors/ folder, beside the repository;
tests/data/ keeps a copy so that the suite also runs from a lone checkout.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_SHARED = Path(__file__).resolve().parents[3] / "shared" / "vectors" / "balancers.json"
_COPY = Path(__file__).resolve().parents[1] / "data" / "balancers.json"


def load_vectors() -> dict[str, Any]:
    """Return the vectors, from shared/ when it is there, else from the repository's copy."""
    path = _SHARED if _SHARED.is_file() else _COPY
    vectors: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return vectors
