"""A prepared GPU check: full fine-tuning of a random-init Qwen2-architecture model (0.5B or 1.5B, built
from a transformers config, no hub access) through the project's trainer without Ray (`train_loop`:
a one-process torch.distributed group, DeepSpeed ZeRO-2, packing, bf16, gradient checkpointing) on
synthetic conversations in the SFT export format, then the figures: real tokens/s after the warmup
steps, model TFLOP/s and MFU, peak GPU memory.

FLOPs per token: 6N (N parameters, the tied embedding counted once: the trainer's own `mfu`), plus
attention 12*L*d*S (L layers, d hidden) with S = the packed length (every token as if it attended the
whole packed row: an upper bound) or S = sum(l^2)/sum(l) over the example lengths l (packing attends
within each example only). MFU = FLOPs/token * tokens/s / peak (dense bf16, --peak-tflops).

    python bench/gpu_check.py [--arch qwen2-0.5b|qwen2.5-1.5b] [--steps 30] [--warmup 5] [--out DIR]
    python bench/gpu_check.py --tiny     # a tiny config on CPU (seq 256, fp32): the same path, checked here
"""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import os
import platform
import random
import resource
import shutil
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

log = logging.getLogger("bench.gpu_check")

# Qwen2 architectures (hidden, layers, heads, KV heads, intermediate, vocab), embeddings tied.
ARCHS = {
    "qwen2-0.5b": dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                       intermediate_size=4864, vocab_size=151936),
    "qwen2.5-1.5b": dict(hidden_size=1536, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
                         intermediate_size=8960, vocab_size=151936),
    "tiny": dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=256, vocab_size=1024),
}
WORDS = ("the a of to and in that she he was for on they with as his her at by from had not what when "
         "friend work city morning sister team dog run moved said felt thought went called found").split()
ZERO2 = "configs/deepspeed/zero2.yaml"
PACKAGES = ("torch", "transformers", "deepspeed", "pydantic", "pyarrow", "flash-attn")


def build_model(arch: str, out_dir: str, use_gpu: bool) -> int:
    """A random-init Qwen2 model of `arch` with a small byte-level BPE chat tokenizer (its ids fit the
    model's vocabulary) written to `out_dir`; returns its parameter count."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2Config

    from llm.local_models import tiny_chat_model

    tok = AutoTokenizer.from_pretrained(tiny_chat_model(out_dir + "-tokenizer", hidden=64, layers=1))
    shape = dict(ARCHS[arch])
    shape["vocab_size"] = max(shape["vocab_size"], len(tok))
    config = Qwen2Config(**shape, tie_word_embeddings=True, max_position_embeddings=32768,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    with torch.device("cuda" if use_gpu else "cpu"):  # random init on the GPU: seconds, not minutes
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16 if use_gpu else torch.float32)
    n_params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    del model
    if use_gpu:  # the peak memory reported is the trainer's
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    return n_params


def conversation(rng: random.Random, n_words: int) -> list[dict]:
    words = [rng.choice(WORDS) for _ in range(max(n_words, 4))]
    cut = len(words) // 3
    return [{"role": "user", "content": " ".join(words[:cut])}, {"role": "assistant", "content": " ".join(words[cut:])}]


def write_data(folder: str, model_dir: str, n_train: int, n_test: int, seq_len: int, seed: int = 0) -> list[int]:
    """train.jsonl / test.jsonl (the SFT export's `messages` rows) of conversations about seq_len/16 to
    seq_len/2 tokens long; returns the token lengths of the training examples as the trainer encodes them."""
    from llm.models import load_tokenizer
    from train.sequences import encode_all

    tok = load_tokenizer(model_dir)
    per_word = len(tok(" ".join(WORDS))["input_ids"]) / len(WORDS)
    rng = random.Random(seed)
    splits = {split: [conversation(rng, int(rng.uniform(seq_len / 16, seq_len / 2) / per_word)) for _ in range(n)]
              for split, n in (("train", n_train), ("test", n_test))}
    os.makedirs(folder, exist_ok=True)
    for split, convs in splits.items():
        with open(os.path.join(folder, f"{split}.jsonl"), "w") as f:
            f.writelines(json.dumps({"messages": c}) + "\n" for c in convs)
    return [len(e.input_ids) for e in encode_all(tok, splits["train"], seq_len)[0]]


def versions() -> dict:
    """Python, the packages the check depends on (None: not installed) and the accelerator."""
    import torch

    out: dict = {"python": platform.python_version(), "torch_cuda": torch.version.cuda,
                 "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def figures(rows: list[dict], warmup: int, n_params: int, shape: dict, seq_len: int, lengths: list[int],
            peak_tflops: float, use_gpu: bool) -> dict:
    """Throughput, FLOPs and MFU over the steps after `warmup` (the trainer's per-step metrics)."""
    timed = rows[warmup:]
    tokens_per_s = sum(r["step_tokens"] for r in timed) / sum(r["step_seconds"] for r in timed)
    attn = 12 * shape["num_hidden_layers"] * shape["hidden_size"]
    seq_examples = sum(n * n for n in lengths) / sum(lengths)
    flops = {"6N": 6 * n_params, "6N+12LdS_packed": 6 * n_params + attn * seq_len,
             "6N+12LdS_examples": 6 * n_params + attn * seq_examples}
    out = {"tokens_per_s": round(tokens_per_s, 1),
           "step_seconds_mean": round(sum(r["step_seconds"] for r in timed) / len(timed), 4),
           "tokens_per_step": round(sum(r["step_tokens"] for r in timed) / len(timed)),
           "attn_seq": {"packed": seq_len, "examples": round(seq_examples, 1)},
           "model_tflops": {k: round(f * tokens_per_s / 1e12, 3) for k, f in flops.items()}}
    if use_gpu:
        out["mfu"] = {k: round(f * tokens_per_s / (peak_tflops * 1e12), 4) for k, f in flops.items()}
    return out


def peak_memory(use_gpu: bool) -> dict:
    import torch

    gib = 1024 ** 3
    if use_gpu:
        return {"gpu_allocated_gib": round(torch.cuda.max_memory_allocated() / gib, 2),
                "gpu_reserved_gib": round(torch.cuda.max_memory_reserved() / gib, 2)}
    return {"cpu_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / gib, 2)}


def run(args: argparse.Namespace) -> dict:
    """Build the model and data, train through `train_loop`, and measure."""
    import torch

    from core.layout import RunLayout
    from train.loop import train_loop
    from train.models import attention_for
    from train.sequences import pack, packing_efficiency
    from train.settings import TrainConfig

    use_gpu = not args.tiny
    if use_gpu and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --tiny on a CPU machine")
    arch = "tiny" if args.tiny else args.arch
    work = tempfile.mkdtemp(prefix="gpu-check-")
    try:
        t0 = time.perf_counter()
        model_dir = os.path.join(work, "model")
        n_params = build_model(arch, model_dir, use_gpu)
        data_dir = os.path.join(work, "data")
        lengths = write_data(data_dir, model_dir, args.examples, args.eval_examples, args.seq_len)
        train = {"model": model_dir, "data": data_dir, "output_dir": os.path.join(work, "out"),
                 "storage_path": os.path.join(work, "ckpt"), "name": "gpu-check", "use_gpu": use_gpu, "bf16": True,
                 "gradient_checkpointing": True, "max_seq_len": args.seq_len, "packing": True,
                 "grad_accum": args.grad_accum, "lr": 1e-4, "warmup_ratio": 0.1, "max_steps": args.steps,
                 "eval_every": args.steps, "save_every": args.steps, "eval_examples": args.eval_examples,
                 "attn_implementation": args.attn, "peak_tflops": args.peak_tflops, "wandb": {"enabled": False},
                 "deepspeed": os.path.join(REPO, ZERO2)}
        cfg = TrainConfig.model_validate(train)
        attention = attention_for(cfg)  # what load_model picks for this config
        packs = pack(lengths, args.seq_len)  # what the trainer packs
        setup_s = time.perf_counter() - t0
        log.info("%s: %.3fB parameters, %d examples (%d packs of <= %d tokens), attention %s, %s",
                 arch, n_params / 1e9, len(lengths), len(packs), args.seq_len, attention, "GPU bf16" if use_gpu else "CPU fp32")
        t1 = time.perf_counter()
        final = train_loop({"train": train})
        train_s = time.perf_counter() - t1
        with open(os.path.join(cfg.output_dir, RunLayout.TRAIN_METRICS)) as f:
            rows = [json.loads(line) for line in f]
        steps = [r for r in rows if "tokens_per_s" in r]  # the baseline evaluation's row has no step metrics
        result = {"arch": arch, **{k: ARCHS[arch][k] for k in ("hidden_size", "num_hidden_layers")},
                  "n_params": n_params, "attention": attention, "dtype": "bf16" if use_gpu else "fp32",
                  "gradient_checkpointing": True, "deepspeed": ZERO2, "seq_len": args.seq_len,
                  "grad_accum": args.grad_accum, "steps": len(steps), "warmup_steps": args.warmup,
                  "packing_efficiency": round(packing_efficiency(packs, args.seq_len), 4),
                  "loss_first": steps[0]["loss"], "loss_last": steps[-1]["loss"],
                  "eval_loss_first": rows[0].get("eval_loss"), "eval_loss_last": final.get("eval_loss"),
                  **figures(steps, args.warmup, n_params, ARCHS[arch], args.seq_len, lengths, args.peak_tflops, use_gpu),
                  "peak_tflops": args.peak_tflops, "peak_memory": peak_memory(use_gpu),
                  "setup_s": round(setup_s, 1), "train_loop_s": round(train_s, 1), "versions": versions()}
        torch.distributed.destroy_process_group()
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", choices=[a for a in ARCHS if a != "tiny"], default="qwen2-0.5b")
    p.add_argument("--tiny", action="store_true", help="the tiny config on CPU (seq 256, 6 steps) to check the path")
    p.add_argument("--steps", type=int, help="optimizer steps (default 30; 6 with --tiny)")
    p.add_argument("--warmup", type=int, help="steps left out of the figures (default 5; 2 with --tiny)")
    p.add_argument("--seq-len", type=int, help="packed length (default 4096; 256 with --tiny)")
    p.add_argument("--grad-accum", type=int, default=4, help="packed sequences per optimizer step")
    p.add_argument("--examples", type=int, default=128, help="training conversations (epochs repeat)")
    p.add_argument("--eval-examples", type=int, default=8)
    p.add_argument("--attn", help="attention implementation (default: the trainer's choice)")
    p.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak per GPU (H100/H200 SXM: 989)")
    p.add_argument("--out", default=os.environ.get("OUT", "gpu_check_out"), help="folder for gpu_check_<arch>.json")
    args = p.parse_args()
    tiny = args.tiny
    args.steps = args.steps or (6 if tiny else 30)
    args.warmup = args.warmup if args.warmup is not None else (2 if tiny else 5)
    args.seq_len = args.seq_len or (256 if tiny else 4096)
    if args.steps <= args.warmup:
        p.error("--steps must exceed --warmup")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    result = run(args)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"gpu_check_{result['arch']}.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    log.info("RESULT %s", json.dumps(result))
    log.info("%s: %.0f tokens/s after %d warmup steps, MFU %s, peak memory %s (%s)", result["arch"],
             result["tokens_per_s"], result["warmup_steps"], result.get("mfu", "n/a (CPU)"), result["peak_memory"], path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
