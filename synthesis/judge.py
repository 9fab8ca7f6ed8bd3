"""Acceptance of judged samples (PAPER.md 3.4, `check_quality`): per-kind, per-platform thresholds."""
from __future__ import annotations

from synthesis.settings import JudgeConfig

# Kinds whose thresholds differ from the default (overall >= 9 and every other dimension >= 8).
THRESHOLD_KEY = {"persona": "persona", "persona_amazon": "persona", "profile": "profile",
                 "profile_amazon": "profile", "stories": "stories", "sqa_reason": "sqa_reason"}


def verdict(kind: str, platform: str, scores: dict[str, int], dims: tuple[str, ...],
            cfg: JudgeConfig) -> tuple[bool, str]:
    """(accepted, reason): reason names every dimension under its minimum, e.g. "overall 7 < 9"."""
    minimum = cfg.thresholds_for(THRESHOLD_KEY.get(kind, "default"), platform)
    rest = minimum.pop("*", None)
    if rest is not None:
        minimum = {**{d: rest for d in dims}, **minimum}
    missing = [d for d in minimum if d not in scores]
    if missing:
        return False, "no score for " + ", ".join(missing)
    low = [f"{d} {scores[d]} < {m}" for d, m in minimum.items() if scores[d] < m]
    return (not low), "; ".join(low)
