"""Settings of the SFT dataset builder (PAPER.md 5): tasks, caps, bounds, splits, leakage."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from core.config import Model

# are the paper's per-category figures: this sample has one category, so they apply per platform.
_STORY_TASKS = ("half2half_stories", "half_persona2half_stories", "half_theme2target_story",
                "half_theme_persona2target_story")
_SQA_TASKS = ("sqa_general", "sqa_thoughts", "sqa_actions", "sqa_reason")
_SCENARIO_TASKS = ("single_story", "behavior_story", "thoughts")
_WRITING_TASKS = tuple(f"writing_imitation_type{i}" for i in range(1, 5))
_SOCIAL_CAPS = {"persona2profile": 30_000, **{t: 10_000 for t in _STORY_TASKS}, **{t: 30_000 for t in _SQA_TASKS},
                "long_scenario": 13_000, **{t: 13_000 for t in _SCENARIO_TASKS}, **{t: 20_000 for t in _WRITING_TASKS}}
PAPER_CAPS: dict[str, dict[str, int]] = {
    "reddit": {**_SOCIAL_CAPS, "personalized_comment": 100_000},
    "twitter": dict(_SOCIAL_CAPS),
    "blogger": dict(_SOCIAL_CAPS),
    "amazon": {"persona2profile": 2_000, "item_selection": 15_000,
               **{f"review_imitation_type{i}": 1_700 for i in range(1, 5)}},
}


class SplitConfig(Model):
    """`user`: every example of a user in one split, users drawn per platform (unseen people in test);
    `random`: the paper's per-example split; `time`: examples about each user's latest posts held out."""

    mode: Literal["user", "random", "time"] = "user"
    test_fraction: float = Field(0.1, ge=0.0, lt=1.0)


class LeakageConfig(Model):
    """Examples sharing an n-gram with an out-of-domain benchmark item are dropped (ToMBench and OpenToM
    forbid training on them). `benchmarks`: local globs of benchmark folders or files (json, jsonl, csv,
    zip, txt); None: every bench_* folder of the pipeline's `benchmark_data` (local or s3://)."""

    benchmarks: list[str] | None = None
    ngram: int = Field(13, ge=5)


class SFTConfig(Model):
    """SFT dataset builder (PAPER.md 5): task builders -> target bounds -> token limit -> leakage check
    -> caps -> split -> Parquet, messages JSONL and a dataset card under sft/."""

    tokenizer: str = "smollm2"  # the base model's tokenizer folder (its chat template counts tokens)
    # the run root (local or s3://) whose curated events and synthesis outputs are read; default: run_root
    inputs: str | None = None
    max_tokens: int = Field(8192, ge=64)  # whole example with the chat template
    seed: int = 2025
    tasks: list[str] | None = None  # None: every task
    caps: dict[str, dict[str, int]] = {}  # platform -> task -> cap; overrides PAPER_CAPS key by key
    # Target length in tokens (PAPER.md 5: writing 30-1000, comments 20-1000); a task not named: no bound.
    target_tokens: dict[str, tuple[int, int]] = {
        **{t: (30, 1000) for t in _WRITING_TASKS}, **{f"review_imitation_type{i}": (30, 1000) for i in range(1, 5)},
        "personalized_comment": (20, 1000)}
    # Posts without tags: "exclude" (the paper: only posts tagged high/medium and harmless, and for the
    # writing tasks social and safe) or "include" (smoke runs whose LLM budget tagged a few posts only;
    # a tag that rejects a post still excludes it).
    untagged_posts: Literal["exclude", "include"] = "exclude"
    # The person part (persona/profile, past posts, style) of behaviour-prediction prompts (social QA,
    # writing/review imitation, comments, item selection); false: the same examples without it (ablation).
    person_context: bool = True
    history_posts: tuple[int, int] = (1, 5)  # past posts shown in writing tasks and comments
    history_words: int = Field(300, ge=10)  # each past post cut to this many words
    prefix_fraction: tuple[float, float] = (0.3, 0.7)  # where continuation tasks split the post
    item_candidates: int = Field(20, ge=2)
    item_history: int = Field(30, ge=1)  # purchased titles shown
    item_min_index: int = Field(7, ge=0)  # the target is the last qualified item if at index >= this
    item_inputs: dict[Literal["history", "persona", "both"], float] = {"history": 0.5, "persona": 0.15, "both": 0.35}
    split: SplitConfig = SplitConfig()
    leakage: LeakageConfig = LeakageConfig()

    def cap(self, platform: str, task: str) -> int | None:
        """The cap of a task on a platform (None: the paper has none, so keep all)."""
        return {**PAPER_CAPS.get(platform, {}), **self.caps.get(platform, {})}.get(task)
