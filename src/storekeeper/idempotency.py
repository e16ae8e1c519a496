"""Request fingerprints for idempotent endpoints (hold client tokens, Idempotency-Key)."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson


def fingerprint(payload: Any) -> str:
    """A stable SHA-256 of a JSON-able payload: same meaning, same fingerprint, whatever the
    key order the client used."""
    canonical = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.sha256(canonical).hexdigest()
