"""Training: assistant-only labels and packing checked token by token, the loop without Ray (resume
after a hard exit), Ray Train + DeepSpeed ZeRO-2/3 on 2 CPU workers (loss falls, same seed same losses,
kill and rerun by name, W&B offline files from rank 0 only), merge and export."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from llm.models import load_tokenizer
from ray_jobs.config import parse_config
from sft.stage import run as run_build_sft
from tests.conftest import REPO
from tests.sft_fixtures import write_sft_run_root
from train.merge import average_state_dicts, merge_models
from train.sequences import (
    IGNORE,
    encode,
    encode_all,
    pack,
    packed_batch,
    packing_efficiency,
)

CONVERSATION = [{"role": "user", "content": "Where did Mia go after work?"},
                {"role": "assistant", "content": "She went climbing with her sister."}]


@pytest.fixture(scope="module")
def sft_export(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp("sft") / "run")
    write_sft_run_root(root)
    run_build_sft(parse_config({"run_root": root, "salt": "t",
                                "synthesis": {"platforms": ["reddit", "blogger", "amazon"]},
                                "sft": {"leakage": {"benchmarks": []}}}), use_ray=False)
    return f"{root}/sft/export"


def _train_cfg(tiny_model: str, data: str, tmp: Path, **over) -> dict:
    return {"model": tiny_model, "data": data, "output_dir": str(tmp / "out"), "storage_path": str(tmp / "ckpt"),
            "name": "run", "max_seq_len": 1024, "grad_accum": 2, "lr": 2e-3, "max_steps": 6, "eval_every": 3,
            "save_every": 3, "eval_examples": 16, "deepspeed": str(REPO / "configs/deepspeed/zero2.yaml"),
            "wandb": {"mode": "offline"}, **over}


@pytest.mark.slow
def test_labels_cover_exactly_the_assistant_tokens(tiny_model):
    for name in (tiny_model, "smollm2"):
        tok = load_tokenizer(name)
        enc, truncated = encode(tok, CONVERSATION, 4096)
        assert not truncated
        labelled = [t for t in enc.labels if t != IGNORE]
        assert tok.decode(labelled).startswith(CONVERSATION[1]["content"])
        assert tok.decode(labelled) == CONVERSATION[1]["content"] + "<|im_end|>"
        # every labelled token is the input token at the same position
        assert all(label in (IGNORE, i) for i, label in zip(enc.input_ids, enc.labels))
    tok = load_tokenizer(tiny_model)  # the tiny_model template has {% generation %} markers: transformers' own mask agrees
    ref = tok.apply_chat_template(CONVERSATION, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    enc, _ = encode(tok, CONVERSATION, 4096)
    assert enc.input_ids == list(ref["input_ids"])
    assert [int(label != IGNORE) for label in enc.labels] == list(ref["assistant_masks"])


@pytest.mark.slow
def test_truncation_never_leaves_an_all_masked_target(tiny_model):
    tok = load_tokenizer(tiny_model)
    long_prompt = [{"role": "user", "content": "word " * 400}, CONVERSATION[1]]
    examples, stats = encode_all(tok, [CONVERSATION, long_prompt], max_len=64)
    assert stats.dropped_no_target == 1 and stats.truncated == 1 and stats.kept == 1
    assert all(any(label != IGNORE for label in e.labels) for e in examples)
    cut, truncated = encode(tok, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "word " * 200}], 40)
    assert truncated and cut.labels[-1] != IGNORE and len(cut.input_ids) == 40


@pytest.mark.slow
@pytest.mark.parametrize("attention", ["sdpa", "packed_sdpa"])
def test_packing_restarts_positions_and_blocks_attention_across_examples(tiny_model, attention):
    """Packed logits equal each example run alone: sdpa's block-causal mask from the position ids, and
    packed_sdpa (sdpa per example, what CPU training uses)."""
    from transformers import AutoModelForCausalLM

    from train.attention import register

    register()

    tok = load_tokenizer(tiny_model)
    convs = [[{"role": "user", "content": f"question {i} " * (3 + i)},
              {"role": "assistant", "content": f"answer {i} " * (2 + 2 * i)}] for i in range(5)]
    examples, _ = encode_all(tok, convs, 512)
    packs = pack([len(e.input_ids) for e in examples], capacity=200)
    assert sorted(i for p in packs for i in p.members) == list(range(5))
    assert all(p.length <= 200 for p in packs)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32, attn_implementation=attention).eval()
    alone_model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32, attn_implementation="sdpa").eval()
    for p in packs:
        batch = packed_batch(examples, p.members)
        starts = [0]
        for i in p.members[:-1]:
            starts.append(starts[-1] + len(examples[i].input_ids))
        pos = batch["position_ids"][0].tolist()
        assert [k for k, v in enumerate(pos) if v == 0] == starts
        assert batch["labels"][0].tolist() == [x for i in p.members for x in examples[i].labels]
        with torch.no_grad():
            packed_logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                                      use_cache=False).logits[0]  # no KV cache, as in training
            for start, i in zip(starts, p.members):
                alone = alone_model(input_ids=torch.tensor([examples[i].input_ids]), use_cache=False).logits[0]
                torch.testing.assert_close(packed_logits[start:start + len(alone)], alone, atol=1e-4, rtol=1e-4)


def test_packing_efficiency_on_mixed_lengths():
    import random

    rng = random.Random(0)
    lengths = [rng.randint(50, 800) for _ in range(2000)]
    packs = pack(lengths, 4096)
    assert sorted(i for p in packs for i in p.members) == list(range(2000))
    assert packing_efficiency(packs, 4096) >= 0.95


def _run_loop(cfg: dict, env: dict | None = None) -> subprocess.CompletedProcess:
    code = ("import json, logging, sys; from train.loop import train_loop; logging.basicConfig(level=logging.INFO); "
            "print('METRICS ' + json.dumps(train_loop({'train': json.loads(sys.argv[1])})))")
    return subprocess.run([sys.executable, "-c", code, json.dumps(cfg)], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "DS_ACCELERATOR": "cpu", **(env or {})}, timeout=900)


def _metrics(proc: subprocess.CompletedProcess) -> dict:
    line = [x for x in proc.stdout.splitlines() if x.startswith("METRICS ")]
    assert line, proc.stderr[-3000:]
    return json.loads(line[-1][len("METRICS "):])


@pytest.mark.slow
def test_loop_without_ray_resumes_after_a_hard_exit(tiny_model, sft_export, tmp_path):
    with ThreadPoolExecutor(2) as pool:  # the uninterrupted reference beside the run that exits hard
        reference = pool.submit(_run_loop, _train_cfg(tiny_model, sft_export, tmp_path / "a"))
        first = _run_loop(_train_cfg(tiny_model, sft_export, tmp_path / "b", exit_at_step=3))
        full = _metrics(reference.result())
    assert first.returncode == 1 and "exiting hard after the checkpoint" in first.stderr
    again = _run_loop(_train_cfg(tiny_model, sft_export, tmp_path / "b", exit_at_step=3))
    assert "resumed from" in again.stderr and "at step 3" in again.stderr
    resumed = _metrics(again)
    assert resumed["step"] == full["step"] == 6
    assert resumed["loss"] == pytest.approx(full["loss"], rel=1e-6)
    assert resumed["eval_loss"] == pytest.approx(full["eval_loss"], rel=1e-6)
    tuned = tmp_path / "b" / "out" / "tuned"
    assert (tuned / "config.json").exists() and (tuned / "tokenizer_config.json").exists()
    steps = [h["step"] for h in _wandb_history(tmp_path / "b" / "out", attempts=2)]
    assert steps == [0, 1, 2, 3, 4, 5, 6]  # the same W&B run id, continued after step 3


@pytest.mark.slow
def test_merge_is_the_weighted_average_and_the_export_generates(tiny_model, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    tuned = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(torch.randn_like(p))
    tuned.register_buffer("step_count", torch.tensor([7], dtype=torch.int64))
    base.register_buffer("step_count", torch.tensor([1], dtype=torch.int64))
    merged = average_state_dicts(tuned.state_dict(), base.state_dict(), (0.3, 0.7))
    name = "model.layers.0.self_attn.q_proj.weight"
    torch.testing.assert_close(merged[name], 0.3 * tuned.state_dict()[name] + 0.7 * base.state_dict()[name])
    assert merged["step_count"].tolist() == [7]
    with pytest.raises(ValueError, match="sum to 1"):
        average_state_dicts(tuned.state_dict(), base.state_dict(), (0.5, 0.6))
    tuned_dir = tmp_path / "tuned"
    del tuned._buffers["step_count"]  # an export holds the model's own tensors only
    tuned.save_pretrained(tuned_dir)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(tuned_dir)
    out = merge_models(str(tuned_dir), tiny_model, str(tmp_path / "merged"))
    reloaded = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    torch.testing.assert_close(reloaded.state_dict()[name],
                               0.5 * tuned.state_dict()[name] + 0.5 * base.state_dict()[name])
    tok = AutoTokenizer.from_pretrained(out)
    ids = tok.apply_chat_template(CONVERSATION[:1], add_generation_prompt=True, return_tensors="pt", return_dict=True)
    new = reloaded.generate(**ids, max_new_tokens=5, do_sample=False)
    assert new.shape[1] == ids["input_ids"].shape[1] + 5


def _ray_cfg(tiny_model: str, data: str, tmp: Path, name: str, **over):
    train = _train_cfg(tiny_model, data, tmp, **{"name": name, "num_workers": 2, "storage_path": str(tmp / "ray"),
                                           "output_dir": str(tmp / name), **over})
    return parse_config({"run_root": str(tmp), "salt": "t", "train": train})


@pytest.mark.slow
def test_ray_train_deepspeed_zero3_two_workers(ray_cluster, tiny_model, sft_export, tmp_path):
    """ZeRO-3 on two Ray Train workers: the loss and the held-out loss fall, and the export (gathered from
    the ZeRO shards) reloads. ZeRO-2 on two workers, on two nodes, is tests/test_submit.py: a run that lost
    a node resumes by name to an export identical to an uninterrupted run's."""
    from train.launcher import run_training

    m = run_training(_ray_cfg(tiny_model, sft_export, tmp_path, "a", deepspeed=str(REPO / "configs/deepspeed/zero3.yaml")))
    assert m["step"] == 6 and torch.isfinite(torch.tensor(m["loss"]))
    history = _wandb_history(tmp_path / "a")
    steps = [h for h in history if "loss" in h]
    assert len(steps) == 6 and steps[-1]["loss"] < steps[0]["loss"]
    assert history[0]["step"] == 0 and history[-1]["eval_loss"] < history[0]["eval_loss"]  # held-out loss falls
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(m["tuned"])


def _wandb_history(out: Path, attempts: int = 1) -> list[dict]:
    """The logged steps (metrics.jsonl); W&B wrote offline runs from world rank 0 only, one per attempt,
    all with the same run id."""
    runs = sorted((out / "wandb").glob("offline-run-*"))
    assert len(runs) == attempts, runs
    assert len({r.name.rsplit("-", 1)[1] for r in runs}) == 1
    assert all(next(r.glob("*.wandb")).stat().st_size > 0 for r in runs)
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.shared_data
def test_smollm2_sft_on_real_examples_lowers_the_held_out_loss(shared_data, tmp_path):
    """SmolLM2-135M-Instruct (from its wheel) fine-tuned on real writing-imitation examples (the real
    samples curated and built here; 240 read, those fitting 768 tokens trained) without Ray: the
    held-out loss falls."""
    import yaml

    from processing.curate_stage import run as run_curate

    data = yaml.safe_load((REPO / "configs" / "real_data.yaml").read_text())
    for i in data["curate"]["inputs"]:
        i["path"] = i["path"].replace("../shared/data", str(shared_data))
    data.update(run_root=str(tmp_path / "real"))
    data["sft"]["leakage"] = {"benchmarks": [str(shared_data / "bench_*")]}
    cfg = parse_config(data)
    run_curate(cfg, use_ray=False)
    run_build_sft(cfg, use_ray=False)
    # SmolLM2 trains at ~65 real tokens/s on these 2 cores: 6 steps of one packed 768-token row (~4.6k
    # tokens) and 8 held-out examples keep the test near a minute.
    train = {"model": "smollm2", "data": str(tmp_path / "real/sft/export"), "output_dir": str(tmp_path / "out"),
             "storage_path": str(tmp_path / "ckpt"), "max_seq_len": 768, "max_examples": 240, "eval_examples": 8,
             "grad_accum": 1, "lr": 1e-4, "warmup_ratio": 0.1, "max_steps": 6, "eval_every": 6,
             "save_every": 6, "deepspeed": str(REPO / "configs/deepspeed/zero2.yaml"), "wandb": {"mode": "offline"}}
    metrics = _metrics(_run_loop(train))
    history = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    before = history[0]["eval_loss"]
    assert history[0]["step"] == 0 and metrics["eval_loss"] < before - 0.05, (before, metrics)


def test_a_checkpoint_of_another_world_size_is_refused_not_resharded(tmp_path):
    """Rerun with fewer workers (a node short, say): ZeRO shards are per rank, so the run stops with what to do."""
    from train.checkpoints import LocalCheckpointer, STATE, WorldSizeChanged
    from train.settings import TrainConfig

    cfg = TrainConfig(storage_path=str(tmp_path), name="run")
    folder = tmp_path / "run" / "step-00000004"
    folder.mkdir(parents=True)
    (folder / STATE).write_text(json.dumps({"step": 4, "world_size": 2}))
    with pytest.raises(WorldSizeChanged, match=r"written by 2 workers, this run has 1.*cannot be resharded.*"
                                               r"train.num_workers=2"):
        LocalCheckpointer(cfg, rank=0).restore(None, {}, world=1)
