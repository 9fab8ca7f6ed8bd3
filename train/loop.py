"""The SFT training recipe: a `Trainer` (setup, train_step, evaluate, save_checkpoint, fit) that runs
on every Ray Train worker through `train_loop(config)`, or alone in one process (no Ray: world size 1,
local checkpoints), so a GPU check can call it directly.

DeepSpeed builds the engine from a YAML config (ZeRO-2/3, offload); the trainer adds the optimizer,
the cosine schedule with warmup, gradient accumulation, evaluation every N steps, metrics (loss, eval
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

from core.config import StorageConfig
from llm.models import load_tokenizer
from train.checkpoints import Checkpointer, checkpointer_for
from train.data import load_conversations
from train.models import load_model, save_model
from train.sequences import encode_all, Encoded, EncodeStats, epoch_order, micro_batches, Pack, packed_batch, packing_efficiency, padded_batch
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


class Trainer:
    """SFT on one rank. setup() builds everything and restores the last checkpoint; fit() trains to the
    last step and exports the model.

    An optimizer step (train_step) is `grad_accum` micro-batches taken from the data position
    `state["micro"]`, epoch after epoch in a seeded order. The held-out loss (evaluate) is measured
    before the first step and every `eval_every` steps; every `save_every` steps a checkpoint
    (save_checkpoint) keeps the engine and `state`, so a rerun resumes at the next micro-batch.
    """

    def __init__(self, cfg: TrainConfig, storage: StorageConfig | None = None):
        self.cfg, self.storage = cfg, storage or StorageConfig()
        self._order: tuple[int, list[int]] = (-1, [])  # (epoch, this rank's micro-batch order in it)
        self._clock = 0.0  # when the current step's time started

    # ------------------------------------------------------------------------------------ setup
    def setup(self) -> None:
        """Process group, tokenizer, model, data, DeepSpeed engine, checkpoint restore and tracking."""
        cfg = self.cfg
        if not cfg.use_gpu:
            os.environ.setdefault("DS_ACCELERATOR", "cpu")
        self.rank, self.world, self.device = _distributed(cfg.use_gpu)
        torch.manual_seed(cfg.seed)
        self.tokenizer = load_tokenizer(cfg.model, "train.model", self.storage)
        model = load_model(cfg, self.device, self.storage)
        self.n_params = sum(p.numel() for p in model.parameters())
        enc_stats, eff = self._setup_data()
        self._setup_engine(model)
        self.checkpointer: Checkpointer = checkpointer_for(cfg, self.rank)
        self.state = {"step": 0, "micro": 0, "world_size": self.world, "wandb_id": None}
        self.resumed = self.checkpointer.restore(self.engine, self.state, self.world)
        self.tracker = init_tracking(cfg, self.storage, self.rank, self.state, extra={
            "n_params": self.n_params, "world_size": self.world, "total_steps": self.total_steps,
            "packing_efficiency": eff, **asdict(enc_stats)})
        if self.rank == 0:
            log.info("train: %d examples (%s), %d micro-batches/epoch, packing efficiency %s, %d steps, world %d%s",
                     len(self.train_ex), asdict(enc_stats), len(self.batches),
                     f"{eff:.3f}" if eff is not None else "off", self.total_steps, self.world,
                     f", resumed at step {self.state['step']}" if self.resumed else "")

    def _setup_data(self) -> tuple[EncodeStats, float | None]:
        """Encode the conversations into training micro-batches and this rank's held-out batches; size
        an epoch and the run. Returns the encoding stats and the packing efficiency."""
        cfg, world = self.cfg, self.world
        train_conv = load_conversations(cfg.data, "train", cfg.max_examples, self.storage)
        test_conv = load_conversations(cfg.data, "test", cfg.eval_examples, self.storage) if cfg.eval_examples != 0 else []
        self.train_ex, enc_stats = encode_all(self.tokenizer, train_conv, cfg.max_seq_len)
        test_ex, _ = encode_all(self.tokenizer, test_conv, cfg.max_seq_len)
        self.batches = micro_batches(self.train_ex, cfg.packing, cfg.max_seq_len, cfg.micro_batch_size)
        eff = packing_efficiency(self.batches, cfg.max_seq_len) if cfg.packing else None
        tok = self.tokenizer
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        test_groups = micro_batches(test_ex, cfg.packing, cfg.max_seq_len, cfg.micro_batch_size)
        # Every rank runs the same number of forward passes (ZeRO-3 gathers parameters collectively).
        test_groups = test_groups[: len(test_groups) - len(test_groups) % world]
        self.eval_batches = [self._to_batch(test_ex, g) for g in test_groups[self.rank::world]]
        per_epoch = len(epoch_order(len(self.batches), cfg.seed, 0, world)) // world // cfg.grad_accum
        if per_epoch == 0:
            raise ValueError(f"{len(self.batches)} micro-batches cannot fill one optimizer step of {world} workers x "
                             f"{cfg.grad_accum} accumulation steps: lower train.grad_accum or add data")
        self.per_rank_epoch = per_epoch * cfg.grad_accum  # micro-batches of one rank in one epoch
        self.total_steps = cfg.max_steps or int(math.ceil(cfg.epochs * per_epoch))
        return enc_stats, eff

    def _setup_engine(self, model) -> None:
        """The DeepSpeed engine (optimizer and schedule included) around the model's trainable parameters."""
        import deepspeed

        cfg = self.cfg
        ds_config = deepspeed_config(cfg, self.total_steps, cfg.micro_batch_size if not cfg.packing else 1)
        if cfg.lora.enabled and ds_config.get("zero_optimization", {}).get("stage", 0) == 3:
            raise ValueError(f"{cfg.deepspeed}: LoRA runs with ZeRO-2 or less here (the adapters are small); "
                             "use configs/deepspeed/zero2.yaml")
        trainable = [p for p in model.parameters() if p.requires_grad]
        self.engine, _, _, self.scheduler = deepspeed.initialize(model=model, model_parameters=trainable,
                                                                 config=ds_config)

    def _to_batch(self, examples: list[Encoded], group: Pack) -> dict[str, torch.Tensor]:
        if self.cfg.packing:
            return packed_batch(examples, group.members)
        return padded_batch(examples, group.members, self.pad_id)

    # --------------------------------------------------------------------------------- training
    def fit(self) -> dict:
        """Train from the restored position to the last step, then export; the last step's metrics."""
        cfg = self.cfg
        metrics: dict = {}
        if not self.resumed:  # the held-out loss before any step: the baseline every later evaluation is read against
            baseline = self.evaluate()
            if self.tracker is not None and baseline is not None:
                self.tracker.log({"step": 0, "eval_loss": baseline}, 0)
        self._clock = time.perf_counter()
        while self.state["step"] < self.total_steps:
            metrics = self.train_step()
            if self._due(cfg.eval_every):
                metrics["eval_loss"] = self.evaluate()
            self._clock = time.perf_counter()  # the next step's time starts here (evaluation left out)
            self._log(metrics)
            if self._due(cfg.save_every):
                self.save_checkpoint(metrics)
            elif "eval_loss" in metrics:
                self.checkpointer.report(metrics)
        save_model(self.engine, self.tokenizer, cfg, self.storage, self.rank)
        if self.tracker is not None:
            self.tracker.finish(metrics)
        return metrics

    def train_step(self) -> dict:
        """One optimizer step over `grad_accum` micro-batches; its metrics, summed over every rank."""
        cfg, engine = self.cfg, self.engine
        loss_sum, tokens = 0.0, 0
        for _ in range(cfg.grad_accum):
            batch = self._next_batch()
            loss = engine(**batch).loss
            engine.backward(loss)
            engine.step()  # DeepSpeed steps the optimizer on the last micro-batch of the step
            self.state["micro"] += 1
            loss_sum += float(loss)
            tokens += int(batch["input_ids"].numel() if cfg.packing else batch["attention_mask"].sum())
        self.state["step"] += 1
        elapsed = time.perf_counter() - self._clock
        totals = torch.tensor([loss_sum, cfg.grad_accum, tokens], dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(totals)
        tokens_per_s = float(totals[2]) / elapsed if elapsed else 0.0
        metrics = {"step": self.state["step"], "epoch": self.state["micro"] / self.per_rank_epoch,
                   "loss": float(totals[0] / totals[1]),
                   "lr": self.scheduler.get_last_lr()[0] if self.scheduler else cfg.lr, "tokens_per_s": tokens_per_s,
                   "step_tokens": int(totals[2]), "step_seconds": elapsed}
        if cfg.use_gpu:
            metrics["mfu"] = 6 * self.n_params * tokens_per_s / (cfg.peak_tflops * 1e12 * self.world)
        return metrics

    def _next_batch(self) -> dict[str, torch.Tensor]:
        """The micro-batch at the data position, on the device."""
        epoch, offset = divmod(self.state["micro"], self.per_rank_epoch)
        if self._order[0] != epoch:
            order = epoch_order(len(self.batches), self.cfg.seed, epoch, self.world)
            self._order = (epoch, order[self.rank::self.world])
        group = self.batches[self._order[1][offset]]
        return {k: v.to(self.device) for k, v in self._to_batch(self.train_ex, group).items()}

    def _due(self, every: int) -> bool:
        """Whether the step just taken is an every-N step (the last step always is)."""
        step = self.state["step"]
        return step % every == 0 or step == self.total_steps

    def _log(self, metrics: dict) -> None:
        if self.tracker is not None:
            self.tracker.log(metrics, metrics["step"])
        if self.rank == 0:
            log.info("step %d/%d %s", metrics["step"], self.total_steps,
                     json.dumps({k: round(v, 5) if isinstance(v, float) else v for k, v in metrics.items()}))

    def evaluate(self) -> float | None:
        """Mean loss per assistant token over the held-out batches of every rank (a collective call)."""
        if not self.eval_batches:
            return None
        engine = self.engine
        engine.eval()
        total, tokens = 0.0, 0
        with torch.no_grad():
            for batch in self.eval_batches:
                batch = {k: v.to(self.device) for k, v in batch.items()}
                n = int((batch["labels"][:, 1:] != -100).sum())
                total += float(engine(**batch).loss) * n
                tokens += n
        engine.train()
        stats = torch.tensor([total, tokens], dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(stats)
        return float(stats[0] / stats[1]) if stats[1] else None

    def save_checkpoint(self, metrics: dict) -> None:
        """The engine and `state` (step, data position); the fault drill (train.exit_at_step, first run
        only) exits hard right after the checkpoint is committed."""
        self.checkpointer.save(self.engine, self.state, metrics)
        step = self.state["step"]
        if self.cfg.exit_at_step == step and not self.resumed:
            self.checkpointer.wait_committed()
            log.warning("exit_at_step=%d: exiting hard after the checkpoint (fault drill)", step)
            os._exit(1)


def train_loop(config: dict) -> dict:
    """What Ray Train runs on every worker (or one process without Ray): train per `config["train"]`
    (TrainConfig fields; `data`, `output_dir` and `storage_path` resolved) with `config["storage"]` (where
    S3 lives). Returns the final metrics on every rank."""
    trainer = Trainer(TrainConfig.model_validate(config["train"]), StorageConfig.model_validate(config.get("storage") or {}))
    trainer.setup()
    return trainer.fit()
