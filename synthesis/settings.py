"""Settings of the annotation stage (PAPER.md 3.2-3.4): engine, judge thresholds, budgets."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from core.config import Model
from llm.settings import EngineConfig

# Acceptance thresholds of the judge (PAPER.md 3.4, `check_quality`): threshold key -> platform
# ("*" = any) -> rubric dimension ("*" = every dimension not named) -> minimum score.
PAPER_THRESHOLDS: dict[str, dict[str, dict[str, int]]] = {
    "default": {"*": {"overall": 9, "*": 8}},
    "sqa_reason": {
        "*": {"hallucination": 8, "coverage": 8, "fidelity": 8, "novelty": 7, "leakage": 7, "overall": 8},
        "twitter": {"hallucination": 9, "coverage": 8, "fidelity": 8, "novelty": 7, "leakage": 7, "overall": 7},
    },
    "persona": {"*": {"hallucination": 8, "coverage": 7, "conciseness": 8, "relevance": 8, "overall": 8}},
    "profile": {"*": {"hallucination": 8, "coverage": 8, "relevance": 9, "fluency": 9, "conciseness": 8,
                      "informativeness": 8, "novelty": 8, "overall": 8}},
    "stories": {"*": {"hallucination": 8, "coverage": 8, "informativeness": 8, "novelty": 7, "overall": 8}},
}


class JudgeConfig(Model):
    """LLM judge of PAPER.md 3.4. Thresholds override PAPER_THRESHOLDS key by key."""

    engine: EngineConfig | None = None  # None: the synthesis engine judges too
    thresholds: dict[str, dict[str, dict[str, int]]] = {}
    exempt_platforms: list[str] = ["amazon"]  # accepted unjudged, as in the reference code
    source_tokens: int = Field(6000, ge=64)  # the original posts shown to the judge

    def thresholds_for(self, key: str, platform: str) -> dict[str, int]:
        """The minimum score per dimension ("*" = every other) for a threshold key and platform."""
        merged = {**PAPER_THRESHOLDS, **self.thresholds}
        table = merged.get(key, merged["default"])
        return dict(table.get(platform, table.get("*", merged["default"]["*"])))


class SynthesisConfig(Model):
    """LLM synthesis (PAPER.md 3.2-3.4): tags -> user level -> post level -> judge, one Ray Data job each."""

    engine: EngineConfig = EngineConfig()
    judge: JudgeConfig = JudgeConfig()
    platforms: list[Literal["reddit", "twitter", "blogger", "amazon"]] = ["reddit", "twitter", "blogger", "amazon"]
    kinds: list[str] | None = None  # None: every generation of PAPER.md 3.3; else only these kinds
    max_attempts: int = Field(3, ge=1)  # invalid outputs are retried with a new seed, then go to failures/
    seed: int = 0
    user_history_tokens: int = Field(80_000, ge=64)  # per-user prompts (persona, profile, stories, style)
    post_history_tokens: int = Field(4_000, ge=0)  # the shared history prefix of post-level prompts
    post_tokens: int = Field(10_000, ge=32)  # one post as input
    min_qualified_posts: dict[str, int] = {"reddit": 3, "twitter": 5, "blogger": 1, "amazon": 1}
    # posts per user: social QA (best 20), "why" QA (best 60), scenarios/stories (best 40), summaries;
    # "tags" (unset: every post, as in the paper) caps the posts tagged per user, the latest first.
    max_posts: dict[str, int] = {"sqa": 20, "sqa_reason": 60, "scenario": 40, "summary": 1_000_000}
    max_users: int | None = None  # cap per platform (smoke runs)
    # kind -> a cap on its generated tokens below the prompt file's `max_tokens` (a small model that
    # rambles to the budget, a cheaper smoke run); answers that fit are unchanged (same seed)
    max_tokens: dict[str, int] = {}
    # Generated text is scrubbed with curation's PII detectors before it is written (a persona or story
    # can reintroduce an identifier seen in the history); counts per kind land in synth/stats.json.
    scrub_pii: bool = True

    @field_validator("max_tokens")
    @classmethod
    def _known_kinds(cls, caps: dict[str, int]) -> dict[str, int]:
        from synthesis.prompts import all_kinds

        unknown = sorted(set(caps) - set(all_kinds()))
        if unknown:
            raise ValueError(f"unknown generation kind(s) {unknown}; kinds: {', '.join(all_kinds())}")
        if any(n < 1 for n in caps.values()):
            raise ValueError("a max_tokens cap must be at least 1")
        return caps


# Per-task caps of PAPER.md 3.5 (upper bounds from the reference code), per platform. Amazon's caps
