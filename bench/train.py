"""Training throughput: our trainer (DeepSpeed ZeRO-2, one process) with boundary-respecting packing on
and off, against TRL's SFTTrainer padded (assistant-only loss), with boundary-crossing packing
("wrapped") and with padding-free boundary-keeping packing ("bfd"), on the same tiny model, the same
conversations (50-800 tokens) and the same CPU threads, one spawned process per arm.

Real tokens/s = the real (non-padding) tokens of one pass over the data / the wall time of that pass
(model loading and tokenisation excluded). Prints the table and the ratios to TRL.

    python bench/train.py [--examples 240] [--seq-len 2048] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.subprocess_run import child  # noqa: E402

log = logging.getLogger("bench.train")
WORDS = ("the a of to and in that she he was for on they with as his her at by from had not what when "
         "friend work city morning sister team dog run moved said felt thought went called found").split()


def conversations(n: int, tokenizer_dir: str, seed: int = 0) -> list[list[dict]]:
    """n conversations whose chat-template length is uniform in 50-800 tokens (about a third prompt)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        target = rng.randint(50, 800)
        words = [rng.choice(WORDS) for _ in range(target)]
        conv = [{"role": "user", "content": " ".join(words[: target // 3])},
                {"role": "assistant", "content": " ".join(words[target // 3:])}]
        while len(tok.apply_chat_template(conv, tokenize=True)["input_ids"]) > target and len(words) > 10:
            words = words[:-max(1, len(words) // 20)]
            conv = [{"role": "user", "content": " ".join(words[: len(words) // 3])},
                    {"role": "assistant", "content": " ".join(words[len(words) // 3:])}]
        out.append(conv)
    return out


def real_tokens(convs: list[list[dict]], tokenizer_dir: str) -> int:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    return sum(len(tok.apply_chat_template(c, tokenize=True)["input_ids"]) for c in convs)


def ours(model_dir: str, data_dir: str, seq_len: int, packing: bool, threads: int, batch: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    os.environ["DS_ACCELERATOR"] = "cpu"
    from train.loop import train_loop

    out = tempfile.mkdtemp(prefix="bench-ours-")
    with open(os.path.join(data_dir, "train.jsonl")) as f:
        n = sum(1 for _ in f)
    from llm.models import load_tokenizer
    from train.sequences import encode_all, micro_batches

    with open(os.path.join(data_dir, "train.jsonl")) as f:
        convs = [json.loads(line)["messages"] for line in f]
    steps = len(micro_batches(encode_all(load_tokenizer(model_dir), convs, seq_len)[0], packing, seq_len, batch))
    train_loop({"train": {"model": model_dir, "data": data_dir, "output_dir": out, "storage_path": out, "name": "b",
                          "max_seq_len": seq_len, "packing": packing, "micro_batch_size": batch, "grad_accum": 1,
                          "lr": 1e-4, "max_steps": steps, "eval_every": 10**6, "save_every": 10**6,
                          "eval_examples": 0, "max_examples": n, "wandb": {"enabled": False},
                          "deepspeed": os.path.abspath("configs/deepspeed/zero2.yaml")}})
    rows = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    tokens = sum(r["step_tokens"] for r in rows)
    seconds = sum(r["step_seconds"] for r in rows)
    eff = None
    if packing:
        from train.sequences import pack, packing_efficiency

        lengths = [len(e.input_ids) for e in encode_all(load_tokenizer(model_dir), convs, seq_len)[0]]
        eff = packing_efficiency(pack(lengths, seq_len), seq_len)
    return {"tokens": tokens, "seconds": seconds, "steps": len(rows), "packing_efficiency": eff}


def trl(model_dir: str, data_dir: str, seq_len: int, mode: str, threads: int, batch: int) -> dict:
    import torch
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    torch.set_num_threads(threads)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa")
    data = load_dataset("json", data_files=os.path.join(data_dir, "train.jsonl"))["train"]
    kwargs = {"padded": dict(packing=False, assistant_only_loss=True, per_device_train_batch_size=batch),
              "wrapped": dict(packing=True, packing_strategy="wrapped", per_device_train_batch_size=1),
              "bfd": dict(packing=True, packing_strategy="bfd", per_device_train_batch_size=1)}[mode]
    args = SFTConfig(output_dir=tempfile.mkdtemp(prefix="bench-trl-"), max_length=seq_len, num_train_epochs=1,
                     learning_rate=1e-4, logging_steps=10**6, save_strategy="no", report_to="none", use_cpu=True,
                     dataloader_num_workers=0, seed=0, **kwargs,
                     # like for like with ours on CPU: fp32 (TRL turns bf16 autocast on by default, ~10x slower
                     # on CPUs without bf16 units) and no activation recomputation (TRL's default is on)
                     bf16=False, fp16=False, gradient_checkpointing=False)
    timing: dict = {}
    seen = {"tokens": 0}

    class Clock(TrainerCallback):
        def on_train_begin(self, *a, **k):
            timing["t0"] = time.perf_counter()

        def on_train_end(self, *a, **k):
            timing["t1"] = time.perf_counter()

    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tok, callbacks=[Clock()])
    collate = trainer.data_collator

    def counting(features):
        batch_ = collate(features)
        seen["tokens"] += int(batch_["attention_mask"].sum()) if "attention_mask" in batch_ else batch_["input_ids"].numel()
        return batch_

    trainer.data_collator = counting
    trainer.train()
    return {"tokens": seen["tokens"], "seconds": timing["t1"] - timing["t0"], "steps": trainer.state.global_step}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--examples", type=int, default=120)
    p.add_argument("--seq-len", type=int, default=2048)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=4, help="sequences per step of the padded arms")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    from llm.local_models import tiny_chat_model

    work = tempfile.mkdtemp(prefix="bench-train-")
    model_dir = tiny_chat_model(os.path.join(work, "model"), hidden=256, layers=4)
    data_dir = os.path.join(work, "data")
    os.makedirs(data_dir)
    convs = conversations(args.examples, model_dir)
    with open(os.path.join(data_dir, "train.jsonl"), "w") as f:
        for c in convs:
            f.write(json.dumps({"messages": c}) + "\n")
    total = real_tokens(convs, model_dir)
    log.info("%d conversations, %d real tokens, threads %d", len(convs), total, args.threads)
    arms = [("ours, packing (boundaries kept)", ours, (model_dir, data_dir, args.seq_len, True, args.threads, args.batch)),
            ("ours, packing off (padded)", ours, (model_dir, data_dir, args.seq_len, False, args.threads, args.batch)),
            ("TRL padded, assistant-only loss", trl, (model_dir, data_dir, args.seq_len, "padded", args.threads, args.batch)),
            ("TRL packing crossing boundaries (wrapped)", trl, (model_dir, data_dir, args.seq_len, "wrapped", args.threads, args.batch)),
            ("TRL padding-free packing (bfd)", trl, (model_dir, data_dir, args.seq_len, "bfd", args.threads, args.batch))]
    results = {}
    for name, fn, fn_args in arms:
        log.info("arm: %s", name)
        results[name] = child(fn, *fn_args)
    print(f"\n{'arm':<44} {'steps':>6} {'real tokens':>12} {'seconds':>8} {'real tok/s':>10} {'vs TRL wrapped':>14} {'vs TRL padded':>13}")
    base_w = results["TRL packing crossing boundaries (wrapped)"]
    base_p = results["TRL padded, assistant-only loss"]

    def rate(r: dict) -> float | None:
        return r["tokens"] / r["seconds"] if "tokens" in r and r["seconds"] else None

    for name, r in results.items():
        if "error" in r:
            print(f"{name:<44} failed: {r['error'].splitlines()[0]}")
            continue
        vs_w = rate(r) / rate(base_w) if rate(base_w) else float("nan")
        vs_p = rate(r) / rate(base_p) if rate(base_p) else float("nan")
        print(f"{name:<44} {r['steps']:>6} {r['tokens']:>12} {r['seconds']:>8.1f} {rate(r):>10.0f} {vs_w:>13.2f}x {vs_p:>12.2f}x")
    eff = results["ours, packing (boundaries kept)"].get("packing_efficiency")
    print(f"\npacking efficiency of our packing (real tokens / slots of {args.seq_len}): {eff:.3f}" if eff else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
