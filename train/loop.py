"""The SFT training loop: one function that runs on every Ray Train worker, or alone in one process
(`train_loop(config)` with no Ray: world size 1, local checkpoints), so a GPU check can call it directly.

DeepSpeed builds the engine from a YAML config (ZeRO-2/3, offload); the loop adds the optimizer, the
cosine schedule with warmup, gradient accumulation, evaluation every N steps, metrics (loss, eval
loss, lr, real tokens/s, MFU on GPU), checkpoints every N steps with the data position, resume,
W&B on rank 0 and the Hugging Face export at the end.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import asdict

import torch

from llm.models import load_tokenizer
from train.checkpoints import Checkpointer, checkpointer_for
from train.data import load_conversations
from train.models import load_model, save_model
from train.sequences import (
    encode_all,
    epoch_order,
    micro_batches,
    packed_batch,
    packing_efficiency,
    padded_batch,
)
from train.settings import TrainConfig
from train.tracking import init_tracking

log = logging.getLogger(__name__)


def _distributed(use_gpu: bool) -> tuple[int, int, torch.device]:
    """(world rank, world size, device); starts a one-process group when not under Ray Train."""
    import deepspeed
    import torch.distributed as dist

    if not dist.is_initialized():
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(29500 + os.getpid() % 1000))
        os.environ.setdefault("RANK", "0")
        os.environ.setdefault("LOCAL_RANK", "0")
        os.environ.setdefault("WORLD_SIZE", "1")
    deepspeed.init_distributed(dist_backend="nccl" if use_gpu else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    if use_gpu:
        local = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")


def deepspeed_config(cfg: TrainConfig, total_steps: int, micro_batch: int) -> dict:
    """The YAML DeepSpeed config completed with this run's batch sizes, optimizer, schedule and precision."""
    import yaml

    with open(cfg.deepspeed) as f:
        ds = yaml.safe_load(f) or {}
    warmup = max(1, int(round(cfg.warmup_ratio * total_steps)))  # DeepSpeed needs >= 1
    ds.update({
        "train_micro_batch_size_per_gpu": micro_batch,
        "gradient_accumulation_steps": cfg.grad_accum,
        "optimizer": {"type": "AdamW", "params": {"lr": cfg.lr, "weight_decay": cfg.weight_decay,
                                                  "betas": [0.9, 0.999], "eps": 1e-8, "torch_adam": True}},
        "scheduler": {"type": "WarmupCosineLR", "params": {"total_num_steps": max(total_steps, 1),
                                                           "warmup_num_steps": warmup, "warmup_type": "linear",
                                                           "cos_min_ratio": cfg.min_lr_ratio}},
        "bf16": {"enabled": bool(cfg.use_gpu and cfg.bf16)},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    })
    ds.setdefault("gradient_clipping", 1.0)
    return ds


def _evaluate(engine, batches: list[dict], device) -> float | None:
    """Mean loss per assistant token over held-out batches."""
    if not batches:
        return None
    engine.eval()
    total, tokens = 0.0, 0
    with torch.no_grad():
        for batch in batches:
            batch = {k: v.to(device) for k, v in batch.items()}
            n = int((batch["labels"][:, 1:] != -100).sum())
            total += float(engine(**batch).loss) * n
            tokens += n
    engine.train()
    stats = torch.tensor([total, tokens], dtype=torch.float64)
    torch.distributed.all_reduce(stats)
    return float(stats[0] / stats[1]) if stats[1] else None


def train_loop(config: dict) -> dict:
    """Train per `config["train"]` (TrainConfig fields; `data`, `output_dir` and `storage_path` resolved).
    Returns the final metrics on every rank."""
    cfg = TrainConfig.model_validate(config["train"])
    if not cfg.use_gpu:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import deepspeed

    rank, world, device = _distributed(cfg.use_gpu)
    torch.manual_seed(cfg.seed)
    tokenizer = load_tokenizer(cfg.model, "train.model")
    model = load_model(cfg, device)
    n_params = sum(p.numel() for p in model.parameters())

    train_conv = load_conversations(cfg.data, "train", cfg.max_examples)
    test_conv = load_conversations(cfg.data, "test", cfg.eval_examples) if cfg.eval_examples != 0 else []
    train_ex, enc_stats = encode_all(tokenizer, train_conv, cfg.max_seq_len)
    test_ex, _ = encode_all(tokenizer, test_conv, cfg.max_seq_len)
    batches = micro_batches(train_ex, cfg.packing, cfg.max_seq_len, cfg.micro_batch_size)
    eff = packing_efficiency(batches, cfg.max_seq_len) if cfg.packing else None
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def to_batch(examples, group):
        return packed_batch(examples, group.members) if cfg.packing else padded_batch(examples, group.members, pad_id)

    test_groups = micro_batches(test_ex, cfg.packing, cfg.max_seq_len, cfg.micro_batch_size)
    # Every rank runs the same number of forward passes (ZeRO-3 gathers parameters collectively).
    test_groups = test_groups[: len(test_groups) - len(test_groups) % world]
    eval_batches = [to_batch(test_ex, g) for g in test_groups[rank::world]]
    per_epoch = len(epoch_order(len(batches), cfg.seed, 0, world)) // world // cfg.grad_accum
    if per_epoch == 0:
        raise ValueError(f"{len(batches)} micro-batches cannot fill one optimizer step of {world} workers x "
                         f"{cfg.grad_accum} accumulation steps: lower train.grad_accum or add data")
    total_steps = cfg.max_steps or int(math.ceil(cfg.epochs * per_epoch))
    ds_config = deepspeed_config(cfg, total_steps, cfg.micro_batch_size if not cfg.packing else 1)
    if cfg.lora.enabled and ds_config.get("zero_optimization", {}).get("stage", 0) == 3:
        raise ValueError(f"{cfg.deepspeed}: LoRA runs with ZeRO-2 or less here (the adapters are small); "
                         "use configs/deepspeed/zero2.yaml")
    trainable = [p for p in model.parameters() if p.requires_grad]
    engine, _, _, scheduler = deepspeed.initialize(model=model, model_parameters=trainable, config=ds_config)

    ckpt: Checkpointer = checkpointer_for(cfg, rank)
    state = {"step": 0, "micro": 0, "world_size": world, "wandb_id": None}
    resumed = ckpt.restore(engine, state, world)
    tracker = init_tracking(cfg, rank, state, extra={"n_params": n_params, "world_size": world, "total_steps": total_steps,
                                             "packing_efficiency": eff, **asdict(enc_stats)})
    if rank == 0:
        log.info("train: %d examples (%s), %d micro-batches/epoch, packing efficiency %s, %d steps, world %d%s",
                 len(train_ex), asdict(enc_stats), len(batches), f"{eff:.3f}" if eff is not None else "off",
                 total_steps, world, f", resumed at step {state['step']}" if resumed else "")

    metrics: dict = {}
    if not resumed:  # the held-out loss before any step: the baseline every later evaluation is read against
        baseline = _evaluate(engine, eval_batches, device)
        if tracker is not None and baseline is not None:
            tracker.log({"step": 0, "eval_loss": baseline}, 0)
    window_loss, window_n, window_tokens, t0 = 0.0, 0, 0, time.perf_counter()
    micro = state["micro"]  # micro-batches consumed on this rank since the start (the data position)
    per_rank_epoch = per_epoch * cfg.grad_accum
    while state["step"] < total_steps:
        epoch, offset = divmod(micro, per_rank_epoch)
        order = epoch_order(len(batches), cfg.seed, epoch, world)[rank::world][:per_rank_epoch]
        for index in order[offset:]:
            batch = {k: v.to(device) for k, v in to_batch(train_ex, batches[index]).items()}
            loss = engine(**batch).loss
            engine.backward(loss)
            engine.step()
            micro += 1
            window_loss += float(loss)
            window_n += 1
            window_tokens += int(batch["input_ids"].numel() if cfg.packing else batch["attention_mask"].sum())
            if micro % cfg.grad_accum:
                continue
            state["step"] += 1
            step = state["step"]
            elapsed = time.perf_counter() - t0
            totals = torch.tensor([window_loss, window_n, window_tokens], dtype=torch.float64)
            torch.distributed.all_reduce(totals)
            tokens_per_s = float(totals[2]) / elapsed if elapsed else 0.0
            metrics = {"step": step, "epoch": micro / per_rank_epoch, "loss": float(totals[0] / totals[1]),
                       "lr": scheduler.get_last_lr()[0] if scheduler else cfg.lr, "tokens_per_s": tokens_per_s,
                       "step_tokens": int(totals[2]), "step_seconds": elapsed}
            if cfg.use_gpu:
                metrics["mfu"] = 6 * n_params * tokens_per_s / (cfg.peak_tflops * 1e12 * world)
            if step % cfg.eval_every == 0 or step == total_steps:
                metrics["eval_loss"] = _evaluate(engine, eval_batches, device)
            window_loss, window_n, window_tokens, t0 = 0.0, 0, 0, time.perf_counter()
            if tracker is not None:
                tracker.log(metrics, step)
            if rank == 0:
                log.info("step %d/%d %s", step, total_steps, json.dumps({k: round(v, 5) if isinstance(v, float) else v
                                                                         for k, v in metrics.items()}))
            state["micro"] = micro
            if step % cfg.save_every == 0 or step == total_steps:
                ckpt.save(engine, state, metrics)
                if cfg.exit_at_step == step and not resumed:
                    ckpt.wait_committed()
                    log.warning("exit_at_step=%d: exiting hard after the checkpoint (fault drill)", step)
                    os._exit(1)
            elif "eval_loss" in metrics:
                ckpt.report(metrics)
            if step >= total_steps:
                break
    save_model(engine, tokenizer, cfg, rank)
    if tracker is not None:
        tracker.finish(metrics)
    return metrics
