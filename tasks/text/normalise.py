"""Text normalisation every text model applies before it sees a document (TF-IDF and networks alike)."""

from __future__ import annotations

import unicodedata
from typing import Any


def normalise(texts: Any, lowercase: bool = True) -> list[str]:
    """Unicode NFKC, optional lowercase, runs of whitespace as one space, trimmed."""
    out = []
    for t in texts:
        t = " ".join(unicodedata.normalize("NFKC", str(t)).split())
        out.append(t.lower() if lowercase else t)
    return out
