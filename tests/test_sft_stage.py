"""The SFT dataset stage end to end on run roots: splits, caps, determinism, resume, the token limit
with a real tokenizer, the leakage check, the exports (datasets + chat template) and Ray Data."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.compute as pc
import pytest
import yaml

from core import schema as S
from core.storage import RunRoot
from llm.models import load_counting_tokenizer, load_tokenizer
from ray_jobs.config import parse_config
from sft.stage import run as run_build_sft
from tests.conftest import REPO
from tests.sft_fixtures import write_sft_run_root


def _cfg(root: str, **sft):
    return parse_config({"run_root": root, "salt": "t", "synthesis": {"platforms": ["reddit", "blogger", "amazon"]},
                         "sft": {"leakage": {"benchmarks": []}, **sft}})


def _files(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file() and "_work" not in p.parts and p.name != "stats.json"}


def _split(root: RunRoot, split: str):
    return root.read_parquet(f"sft/{split}", schema=S.SFT_SCHEMA)


@pytest.fixture()
def run_root(tmp_path) -> str:
    write_sft_run_root(str(tmp_path / "run"))
    return str(tmp_path / "run")


def test_user_disjoint_split_stratified_by_platform(run_root):
    stats = run_build_sft(_cfg(run_root, split={"test_fraction": 0.3}), use_ray=False)
    root = RunRoot(run_root)
    train, test = _split(root, "train"), _split(root, "test")
    train_users = set(train[S.USER_ID].to_pylist())
    test_users = set(test[S.USER_ID].to_pylist())
    assert train_users and test_users and not train_users & test_users
    assert stats["splits"]["users_in_both"] == 0
    # every platform has 3-4 users: one of them is held out on each
    assert stats["splits"]["test"]["users"] == {"amazon": 1, "blogger": 1, "reddit": 1}
    assert set(train[S.SPLIT].to_pylist()) == {"train"} and set(test[S.SPLIT].to_pylist()) == {"test"}
    assert train.num_rows + test.num_rows == sum(n for by_task in stats["built"].values() for n in by_task.values()) \
        - sum(n for by_reason in stats["rejected"].values() for n in by_reason.values())
    card = (Path(run_root) / "sft" / "README.md").read_text()
    assert "| reddit | personalized_comment |" in card and "Users in both splits: **0**" in card


def test_same_seed_same_dataset_and_caps_hold(run_root, tmp_path):
    caps = {"caps": {"blogger": {"writing_imitation_type3": 5}, "reddit": {"sqa_general": 0}}}
    run_build_sft(_cfg(run_root, **caps), use_ray=False)
    first = _files(Path(run_root) / "sft")
    run_build_sft(_cfg(run_root, **caps), use_ray=False, restart=True)
    assert _files(Path(run_root) / "sft") == first
    root = RunRoot(run_root)
    both = [_split(root, s) for s in ("train", "test")]
    tasks = [(p, t) for table in both for t, p in zip(table[S.TASK].to_pylist(), table[S.PLATFORM].to_pylist())]
    assert tasks.count(("blogger", "writing_imitation_type3")) == 5 and ("reddit", "sqa_general") not in tasks
    assert ("blogger", "sqa_general") in tasks
    def capped(root: RunRoot) -> set[str]:
        return {r[S.EXAMPLE_ID] for s in ("train", "test") for r in _split(root, s).to_pylist()
                if (r[S.PLATFORM], r[S.TASK]) == ("blogger", "writing_imitation_type3")}

    kept = capped(root)
    other = str(tmp_path / "other")
    shutil.copytree(run_root, other)
    run_build_sft(_cfg(other, seed=7, **caps), use_ray=False, restart=True)
    kept7 = capped(RunRoot(other))
    assert len(kept7) == 5 and kept7 != kept  # another seed draws other examples under the cap


def test_killed_split_step_resumes_to_the_same_files(run_root):
    cfg = _cfg(run_root)
    run_build_sft(cfg, use_ray=False)
    before = _files(Path(run_root) / "sft")
    root = RunRoot(run_root)
    # as if killed while writing the blogger shard and the exports
    root.delete("_markers/build-sft-split/blogger/part-0000.json")
    root.delete("sft/train/blogger/part-0000.parquet")
    root.delete("sft/export")
    run_build_sft(cfg, use_ray=False)
    assert _files(Path(run_root) / "sft") == before
    with pytest.raises(RuntimeError, match="another configuration"):
        run_build_sft(_cfg(run_root, seed=1), use_ray=False)


def test_the_counting_tokenizer_is_autotokenizers_without_torch(run_root, tiny_model):
    """build-sft counts with the tokenizers backend alone: the same ids as `AutoTokenizer` (for SmolLM2 and
    the tiny model's template with generation markers), and a fresh process never imports torch."""
    import subprocess
    import sys

    run_build_sft(_cfg(run_root), use_ray=False)
    conversations = [row[S.MESSAGES] for row in _split(RunRoot(run_root), "train").to_pylist()[:60]]
    for name in ("smollm2", tiny_model):
        auto, counting = load_tokenizer(name), load_counting_tokenizer(name)
        assert counting.apply_chat_template(conversations, tokenize=True)["input_ids"] == \
            auto.apply_chat_template(conversations, tokenize=True)["input_ids"]
    probe = ("import sys; from llm.models import load_counting_tokenizer; load_counting_tokenizer('smollm2'); "
             "print(sorted(m for m in sys.modules if m == 'torch'))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stderr[-2000:]


def test_token_limit_uses_the_chat_template_of_the_tokenizer(run_root):
    tok = load_tokenizer("smollm2")
    run_build_sft(_cfg(run_root), use_ray=False)
    root = RunRoot(run_root)
    train = _split(root, "train")
    for row in train.to_pylist()[:40]:
        assert row[S.N_TOKENS] == len(tok.apply_chat_template(row[S.MESSAGES], tokenize=True)["input_ids"])
        assert row[S.TARGET_TOKENS] == len(tok(row[S.MESSAGES][-1]["content"], add_special_tokens=False)["input_ids"])
    limit = int(sorted(train[S.N_TOKENS].to_pylist())[train.num_rows // 2])
    run_build_sft(_cfg(run_root, max_tokens=limit), use_ray=False, restart=True)
    kept = pc.max(_split(root, "train")[S.N_TOKENS]).as_py()
    assert kept <= limit
    rejects = root.read_parquet("sft/rejects", schema=S.SFT_REJECT_SCHEMA).to_pylist()
    too_long = [r for r in rejects if r[S.REASON] == "over the token limit"]
    assert too_long and all(int(r[S.DETAIL].split()[0]) > limit for r in too_long)


def test_random_and_time_splits(run_root, tmp_path):
    run_build_sft(_cfg(run_root, split={"mode": "random", "test_fraction": 0.2}), use_ray=False)
    root = RunRoot(run_root)
    train, test = _split(root, "train"), _split(root, "test")
    assert 0.1 < test.num_rows / (train.num_rows + test.num_rows) < 0.3
    assert set(train[S.USER_ID].to_pylist()) & set(test[S.USER_ID].to_pylist())  # the paper's split mixes people
    run_build_sft(_cfg(run_root, split={"mode": "time", "test_fraction": 0.2}), use_ray=False, restart=True)
    train, test = _split(root, "train"), _split(root, "test")
    assert test.num_rows and all(test[S.HELD_OUT_LATE].to_pylist()) and not any(train[S.HELD_OUT_LATE].to_pylist())
    events = root.read_parquet("events", schema=S.EVENT_SCHEMA)
    for row in test.to_pylist():  # a test example is about one of its user's latest posts
        ts = sorted(t for t, u in zip(events[S.TS].to_pylist(), events[S.USER_ID].to_pylist()) if u == row[S.USER_ID])
        assert row[S.SUBJECT_TS] >= ts[len(ts) - max(1, round(len(ts) * 0.2))]


def test_jsonl_export_loads_with_datasets_and_the_chat_template(run_root):
    import datasets

    run_build_sft(_cfg(run_root), use_ray=False)
    export = Path(run_root) / "sft" / "export"
    ds = datasets.load_dataset("json", data_files={"train": str(export / "train.jsonl"),
                                                   "test": str(export / "test.jsonl")})
    assert ds["train"].column_names == ["messages"]  # no user ids
    assert ds["train"].num_rows == _split(RunRoot(run_root), "train").num_rows
    tok = load_tokenizer("smollm2")
    rendered = [tok.apply_chat_template(m, tokenize=False) for m in ds["train"]["messages"][:50]]
    assert all(r.count("<|im_start|>assistant") == 1 for r in rendered)
    info = json.loads((export / "dataset_info.json").read_text())
    assert info["humanllm_sft_train"]["formatting"] == "sharegpt"
    assert info["humanllm_sft_train"]["tags"]["assistant_tag"] == "assistant"


def test_planted_benchmark_item_is_dropped(run_root, tmp_path):
    root = RunRoot(run_root)
    story = ("On a rainy morning Priya hid the silver key inside the blue teapot so that her brother "
             "would not find it before the party started in the evening")
    events = root.read_parquet("events/blogger/part-0000.parquet", schema=S.EVENT_SCHEMA).to_pylist()
    target = events[4]
    target[S.TEXT] = target[S.TEXT] + " " + story
    import pyarrow as pa

    root.write_parquet("events/blogger/part-0000.parquet", pa.Table.from_pylist(events, schema=S.EVENT_SCHEMA))
    bench = tmp_path / "bench_fake"
    bench.mkdir()
    (bench / "items.jsonl").write_text(json.dumps({"story": story, "choices": ["teapot", "drawer"]}) + "\n")
    stats = run_build_sft(_cfg(run_root, leakage={"benchmarks": [str(bench)]}), use_ray=False)
    rejects = root.read_parquet("sft/rejects", schema=S.SFT_REJECT_SCHEMA).to_pylist()
    leaked = [r for r in rejects if r[S.REASON] == "benchmark overlap"]
    assert leaked and all(str(bench / "items.jsonl") in r[S.DETAIL] for r in leaked)
    kept = [m["content"] for s in ("train", "test") for ms in _split(root, s)[S.MESSAGES].to_pylist() for m in ms]
    assert not any("silver key inside the blue teapot" in c for c in kept)
    assert stats["rejected"]["blogger"]["benchmark overlap"] == len(leaked)
    assert "benchmark overlap" in (Path(run_root) / "sft" / "README.md").read_text()


@pytest.mark.shared_data
def test_real_benchmarks_and_real_data(shared_data, tmp_path):
    """The real samples curated, every post allowed (no LLM tags here), against the eight real
    benchmarks: writing and review imitation are built, and posts MotiveBench was built from are caught."""
    from processing.curate_stage import run as run_curate

    data = yaml.safe_load((REPO / "configs" / "real_data.yaml").read_text())
    for i in data["curate"]["inputs"]:
        i["path"] = i["path"].replace("../shared/data", str(shared_data))
    data["run_root"] = str(tmp_path / "real")
    data["sft"] = {**data.get("sft", {}), "untagged_posts": "include",
                   "leakage": {"benchmarks": [str(shared_data / "bench_*")]}}
    cfg = parse_config(data)
    run_curate(cfg, use_ray=False)
    stats = run_build_sft(cfg, use_ray=False)
    assert stats["leakage"]["benchmark_files"] >= 40 and stats["leakage"]["ngrams"] > 1_000_000
    assert stats["splits"]["train"]["by_platform_task"]["blogger"]["writing_imitation_type2"] > 500
    assert stats["splits"]["users_in_both"] == 0 and stats["splits"]["test"]["users"]["blogger"] == 5
    assert any("bench_motivebench" in source for source in stats["leaked_from"]["blogger"])


@pytest.mark.slow
def test_build_sft_on_ray_equals_in_process(ray_cluster, run_root, tmp_path):
    other = str(tmp_path / "ray")
    shutil.copytree(run_root, other)
    run_build_sft(_cfg(run_root), use_ray=False)
    run_build_sft(_cfg(other), use_ray=True)
    assert _files(Path(other) / "sft") == _files(Path(run_root) / "sft")
