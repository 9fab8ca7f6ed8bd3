"""Train/test splits of the SFT examples: user-disjoint (default, stratified by platform), the paper's
random per-example split, or time-based (examples about each user's latest posts held out)."""
from __future__ import annotations

import hashlib

import pyarrow as pa
import pyarrow.compute as pc

from core import schema as S
from sft.settings import SplitConfig


def draw(seed: int, key: str) -> int:
    """A deterministic 64-bit draw for a key (ranks, user order)."""
    return int.from_bytes(hashlib.blake2b(f"{seed}\x1f{key}".encode(), digest_size=8).digest(), "little")


def test_users(users_by_platform: dict[str, list[str]], fraction: float, seed: int) -> dict[str, list[str]]:
    """Per platform, the users held out: round(fraction * n) of them by a seeded draw, at least one when
    the platform has two or more users and fraction > 0, and never all of them."""
    out = {}
    for platform, users in sorted(users_by_platform.items()):
        users = sorted(set(users), key=lambda u: (draw(seed, f"user:{u}"), u))
        n = len(users)
        k = min(n - 1, max(1, round(n * fraction))) if n >= 2 and fraction > 0 else 0
        out[platform] = sorted(users[:k])
    return out


def assign(table: pa.Table, cfg: SplitConfig, held_out: set[str], seed: int) -> pa.Array:
    """The split (train/test) of every example row."""
    if cfg.mode == "user":
        is_test = pc.is_in(table[S.USER_ID], value_set=pa.array(sorted(held_out), pa.string()))
    elif cfg.mode == "random":
        cut = int(cfg.test_fraction * 2**64)
        is_test = pa.array([draw(seed, f"split:{e}") < cut for e in table[S.EXAMPLE_ID].to_pylist()], pa.bool_())
    else:
        is_test = pc.fill_null(table[S.HELD_OUT_LATE], False)
    return pc.if_else(is_test, S.TEST, S.TRAIN)
