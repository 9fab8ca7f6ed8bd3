"""Loading the base model and tokenizer (a folder, a hub id, or `smollm2`), LoRA, and the Hugging Face
export of the trained weights (gathered from ZeRO-3 shards when needed) with the tokenizer and its
chat template."""
from __future__ import annotations

import importlib.util
import logging
import shutil
import tempfile

import torch

from core.config import StorageConfig
from core.layout import RunLayout
from core.storage import RunRoot
from llm.models import resolve_model
from train.settings import TrainConfig

log = logging.getLogger(__name__)


def attention_for(cfg: TrainConfig) -> str:
    """flash_attention_2 on GPU when installed (varlen over packed sequences); else `packed_sdpa` for
    packed sequences (sdpa per example) and sdpa for padded batches."""
    if cfg.attn_implementation:
        return cfg.attn_implementation
    if cfg.use_gpu and importlib.util.find_spec("flash_attn"):
        return "flash_attention_2"
    if cfg.packing:
        from train.attention import register

        return register()
    return "sdpa"


def load_model(cfg: TrainConfig, device: torch.device, storage: StorageConfig | None = None):
    from transformers import AutoModelForCausalLM

    dtype = torch.bfloat16 if cfg.use_gpu and cfg.bf16 else torch.float32
    model = AutoModelForCausalLM.from_pretrained(resolve_model(cfg.model, storage), dtype=dtype,
                                                 attn_implementation=attention_for(cfg))
    model.config.use_cache = False
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    if cfg.lora.enabled:
        from peft import get_peft_model, LoraConfig

        model = get_peft_model(model, LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                                                 target_modules=cfg.lora.target_modules, task_type="CAUSAL_LM"))
    return model.to(device)


def save_model(engine, tokenizer, cfg: TrainConfig, storage: StorageConfig, rank: int) -> str:
    """Write the trained model (LoRA merged and unloaded) and tokenizer to <output_dir>/tuned on rank 0
    (exported to a local temporary folder and uploaded when output_dir is on S3)."""
    models = RunRoot(cfg.output_dir, storage)
    remote = "://" in cfg.output_dir
    out = tempfile.mkdtemp(prefix="humanllm-export-") if remote and rank == 0 else models.path(RunLayout.TUNED)
    if engine.zero_optimization_stage() == 3:
        state = engine._zero3_consolidated_16bit_state_dict()  # collective: every rank calls it
    else:
        state = engine.module.state_dict() if rank == 0 else None
    if rank == 0:
        module = engine.module
        if module.config._attn_implementation == "packed_sdpa":  # training-only: exports load with sdpa
            module.config._attn_implementation = "sdpa"
        if cfg.lora.enabled:
            module.load_state_dict(state)
            module = module.merge_and_unload()
            module.save_pretrained(out)
        else:
            module.save_pretrained(out, state_dict=state)
        tokenizer.save_pretrained(out)
        if remote:
            models.put_dir(out, RunLayout.TUNED)
            shutil.rmtree(out, ignore_errors=True)
        log.info("saved the tuned model to %s", models.uri_of(RunLayout.TUNED))
    torch.distributed.barrier()
    return models.uri_of(RunLayout.TUNED)
