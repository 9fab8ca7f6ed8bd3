"""Stable ids and per-attempt seeds: the same inputs give the same ids and seeds on every rerun."""
from __future__ import annotations

import hashlib


def stable_id(*parts: str) -> str:
    """A 20-hex-digit id from parts (joined with a unit separator)."""
    return hashlib.sha1("\x1f".join(parts).encode()).hexdigest()[:20]


def seed_for(request_id: str, attempt: int, base: int) -> int:
    """A new seed per attempt, the same on every rerun."""
    return int(hashlib.sha1(f"{base}:{request_id}:{attempt}".encode()).hexdigest()[:8], 16) & 0x7FFFFFFF
