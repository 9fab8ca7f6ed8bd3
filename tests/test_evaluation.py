"""Evaluation: MCQ scoring (fixed and random answers, log-likelihood by hand), judge parsing and
position swapping, in-domain metrics, the stage in-process and on Ray, and the report in Chromium."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from core.config import StorageConfig
from core.layout import RunLayout
from core.storage import RunRoot
from evaluation import judge as J
from evaluation import mcq as M
from evaluation import text_metrics as T
from evaluation.benchmarks import load_benchmark
from evaluation.in_domain import item_hit
from evaluation.items import MCQItem, items_table
from evaluation.report import chromium, render_in_chromium
from evaluation.stage import JUDGE_SCHEMA, pairwise_summary
from evaluation.stage import run as run_evaluate
from ray_jobs.config import parse_config
from sft.stage import run as run_build_sft
from tests.sft_fixtures import write_sft_run_root

ITEMS = [MCQItem(f"t/{i}", "toy", "s", "en", f"Story {i}.", "Where?", ("box", "basket", "more full"), i % 3)
         for i in range(3)]


def test_parse_letter():
    choices = ("the box", "the basket", "less full", "more full")
    assert M.parse_letter("B", choices) == 1
    assert M.parse_letter("(C) less full", choices) == 2
    assert M.parse_letter("Let me think. Sally left... Answer: A", choices) == 0
    assert M.parse_letter("The answer is **D**.", choices) == 3
    assert M.parse_letter("She will look in the basket.", choices) == 1
    assert M.parse_letter("It is more full now", choices) == 3  # "full" options: the longest match wins
    assert M.parse_letter("E", choices) is None  # no option E
    assert M.parse_letter("I am not sure.", choices) is None
    assert M.parse_letter("the box or the basket", choices) is None  # ambiguous


def test_fixed_answer_scores_exactly_and_random_lands_near_chance(shared_data):
    items = load_benchmark("socialiqa", shared_data)
    fixed = M.result_rows(items, "fixed", M.GENERATE, [M.parse_letter("B", it.choices) for it in items],
                          [None] * len(items), ["B"] * len(items))
    acc = M.accuracy_table(fixed, 200, 0)
    overall = next(r for r in acc if r["subset"] == "*")
    assert overall["accuracy"] == pytest.approx(654 / 1954)  # SOURCE.md: 654 gold answers are B
    assert overall["chance"] == pytest.approx(1 / 3) and overall["n"] == 1954
    rng = np.random.default_rng(0)
    letters = ["ABC"[k] for k in rng.integers(0, 3, len(items))]
    rand = M.accuracy_table(M.result_rows(items, "random", M.GENERATE, [M.parse_letter(x, it.choices) for x, it in
                                                                       zip(letters, items)],
                                          [None] * len(items), letters), 1000, 0)
    r = next(r for r in rand if r["subset"] == "*")
    assert r["ci_low"] < 1 / 3 < r["ci_high"] and abs(r["accuracy"] - 1 / 3) < 0.04
    assert r["ci_high"] - r["ci_low"] < 0.05  # 1,954 items: a tight interval


def test_sample_items_spreads_over_subsets_and_is_deterministic():
    items = [MCQItem(f"b/{s}/{i}", "b", s, "en", "", "q", ("x", "y"), 0) for s in "abc" for i in range(20)]
    chosen = M.sample_items(items, 9, seed=1)
    assert [sum(it.subset == s for it in chosen) for s in "abc"] == [3, 3, 3]
    assert chosen == M.sample_items(list(reversed(items)), 9, seed=1)
    assert chosen != M.sample_items(items, 9, seed=2)


@pytest.mark.slow
def test_loglik_equals_a_hand_computation(tiny_model):
    scorer = M.LoglikScorer(tiny_model, "tiny")
    for item in ITEMS:
        prompt = scorer.prompt_ids(item)
        expected = []
        for choice in item.choices:
            option = scorer.tok(choice, add_special_tokens=False).input_ids
            with torch.no_grad():
                logp = torch.log_softmax(scorer.model(torch.tensor([prompt + option])).logits[0].float(), -1)
            expected.append(float(np.mean([logp[len(prompt) - 1 + j, t].item() for j, t in enumerate(option)])))
        assert scorer.score(item) == pytest.approx(expected, abs=1e-5)
    table = scorer(items_table(ITEMS))
    assert table["pred"].to_pylist() == [int(np.argmax(s)) for s in table["scores"].to_pylist()]


def test_judge_parsing_and_position_swap():
    assert J.parse_score("Score: 7\nGood voice.") == 7
    assert J.parse_score("**Score**: 10/10") == 10
    assert J.parse_score("I would give it 3.") == 3
    assert J.parse_score("no idea") is None
    assert J.parse_winner("Winner: 2\nbecause") == "2" and J.parse_winner("winner: TIE") == "tie"
    assert J.parse_winner("both are fine") is None
    assert J.swap_outcome("1", "2") == "win"  # A preferred in both orders
    assert J.swap_outcome("2", "1") == "loss"
    assert J.swap_outcome("1", "1") == "tie"  # the verdict followed the position
    assert J.swap_outcome("tie", "2") == "tie" and J.swap_outcome(None, None) is None
    rows = []
    for eid, (first, second) in {"e1": ("1", "2"), "e2": ("1", "1"), "e3": ("2", "1"), "e4": ("1", "2"),
                                 "e5": (None, None)}.items():
        for a_first, w in ((True, first), (False, second)):
            rows.append({"kind": J.PAIRWISE, "example_id": eid, "task": "writing_imitation_type2", "model": "tuned",
                         "model_b": "base", "a_first": a_first, "verdict": "", "score": None, "winner": w})
    summary = pairwise_summary(pa.Table.from_pylist(rows, schema=JUDGE_SCHEMA))
    overall = next(r for r in summary if r["task"] == "*")
    assert (overall["wins"], overall["ties"], overall["losses"], overall["unparsed"]) == (2, 1, 1, 1)
    assert overall["win_rate"] == pytest.approx(2.5 / 4)
    assert "10" in J.pointwise_prompt("writing_imitation_type2", "Write.", "ref", "out")


@pytest.mark.slow
def test_in_domain_metrics():
    assert item_hit("I'd go for Item 03 lamp, clearly.", "item 03 lamp") and not item_hit("Item 04", "Item 03 lamp")
    assert T.rouge_l("the cat sat on the mat", "the cat sat on the mat") == pytest.approx(1.0)
    assert T.rouge_l("", "the cat") == 0.0
    same, other = T.embedding_similarity(["My dog loves long walks in the park.", "Quarterly tax filing deadlines."],
                                         ["My puppy enjoys walking in the park."] * 2)
    assert same > 0.6 > other
    casual = ["lol ok so today was wild!!! my cat knocked over the plant lol", "omg the bus was late again!!! ugh lol",
              "haha cant believe it rained all day!!! lol", "so tired lol!!! gonna nap now haha"]
    formal = ["The committee convened on Tuesday; its conclusions, however, remain provisional.",
              "Accordingly, the proposal was deferred pending further review of the budget.",
              "Nevertheless, the results indicate a modest, though measurable, improvement.",
              "In summary, the evidence supports a cautious, incremental approach."]
    refs, users = casual + formal, ["u_casual"] * 4 + ["u_formal"] * 4
    good = ["lol my phone died again!!! haha", "omg pizza for dinner lol!!!", "ugh mondays lol!!!", "haha the dog ate it!!! lol",
            "The board, however, postponed its decision.", "Consequently, the schedule was revised.",
            "Moreover, the findings remain preliminary.", "In conclusion, further analysis is required."]
    swapped = good[4:] + good[:4]
    assert sum(T.attribution(good, refs, users, folds=4)) >= 7
    assert sum(T.attribution(swapped, refs, users, folds=4)) <= 1
    assert np.mean(T.style_similarity(good, refs, users)) > np.mean(T.style_similarity(swapped, refs, users))


def _eval_cfg(run_root: str, tiny_model: str, table: str, out: str, data_dir: str, **over) -> object:
    engine = {"backend": "table", "table": table, "model": tiny_model}
    return parse_config({"run_root": run_root, "salt": "t", "evaluate": {
        "output_dir": out, "data_dir": data_dir, "benchmarks": ["socialiqa", "tomi", "hitom"],
        "items_per_benchmark": 12, "engine": engine, "bootstrap": 100,
        "models": [{"name": "fixed", "model": tiny_model, "engine": engine}, {"name": "base", "model": tiny_model, "engine": engine}],
        "judge": {"engine": engine, "pairs": [["fixed", "base"]]}, **over}})


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("eval")
    root = str(tmp / "run")
    write_sft_run_root(root)
    run_build_sft(parse_config({"run_root": root, "salt": "t", "synthesis": {"platforms": ["reddit", "blogger", "amazon"]},
                                "sft": {"leakage": {"benchmarks": []}, "split": {"test_fraction": 0.34}}}), use_ray=False)
    table = tmp / "answers.json"
    table.write_text(json.dumps({"eval_mcq": "A", "eval_generate": "Honestly I would pick Item 01 scarf, as always.",
                                 "judge_pointwise": "Score: 7\nClose to the real text.",
                                 "judge_pairwise": "Winner: 1\nThe first one."}))
    return {"root": root, "table": str(table), "tmp": tmp}


@pytest.mark.slow
def test_stage_scores_reruns_and_renders_the_report(sft_run, tiny_model, shared_data):
    out = str(sft_run["tmp"] / "out")
    cfg = _eval_cfg(sft_run["root"], tiny_model, sft_run["table"], out, str(shared_data))
    summary = run_evaluate(cfg, use_ray=False)
    items = RunRoot(out).read_parquet("items.parquet")
    assert items.num_rows == 36 and set(items["benchmark"].to_pylist()) == {"socialiqa", "tomi", "hitom"}
    gen = [r for r in summary["mcq"] if r["method"] == "generate" and r["subset"] == "*" and r["model"] == "fixed"]
    for r in gen:  # the fixed answer "A" is right exactly when the gold answer is the first option
        sub = items.filter(pa.compute.equal(items["benchmark"], r["benchmark"]))
        assert r["accuracy"] == pytest.approx(np.mean([a == 0 for a in sub["answer"].to_pylist()]))
        assert r["unparsed"] == 0
    ll = RunRoot(out).read_parquet("mcq/fixed/loglik.parquet")
    assert ll.num_rows == 36 and all(len(s) == n for s, n in zip(ll["scores"].to_pylist(), ll["n_choices"].to_pylist()))
    tasks = {r["task"] for r in summary["in_domain"]}
    assert "item_selection" in tasks and any(t.startswith("writing_imitation") for t in tasks)
    hits = [r for r in summary["in_domain"] if r["task"] == "item_selection" and r["metric"] == "item_hit"]
    assert all(0 <= r["mean"] <= 1 for r in hits)
    judged = [r for r in summary["in_domain"] if r["metric"] == "judge_score"]
    assert judged and all(r["mean"] == 7 for r in judged)
    pair = next(r for r in summary["pairwise"] if r["task"] == "*")
    assert pair["ties"] == pair["n"] > 0 and pair["win_rate"] == 0.5  # "always 1": position bias, all ties
    # a rerun reuses every step and writes the same summary; a deleted step is redone identically
    first = Path(out, "summary.json").read_text()
    Path(out, "mcq/fixed/loglik.parquet").unlink()
    run_evaluate(cfg, use_ray=False)
    assert Path(out, "summary.json").read_text() == first
    with pytest.raises(RuntimeError, match="another configuration"):
        run_evaluate(_eval_cfg(sft_run["root"], tiny_model, sft_run["table"], out, str(shared_data), items_per_benchmark=6),
                     use_ray=False)
    # the report opens in headless Chromium with every figure loaded
    if chromium() is None:
        pytest.skip("no chromium on PATH (scripts/install.sh installs Debian's chromium)")
    shot = sft_run["tmp"] / "report.png"
    dom = render_in_chromium(Path(out, "report.html"), shot)
    shown = re.search(r'data-images="(\d+)" data-images-loaded="(\d+)"', dom)
    assert shown and int(shown.group(1)) == int(shown.group(2)) >= 5  # every <img> decoded (no funnel: no curation here)
    for text in ("Out-of-domain social intelligence", "In-domain: held-out users", "socialiqa", "item_selection"):
        assert text in dom
    import matplotlib.image as mpimg

    pixels = mpimg.imread(str(shot))
    assert pixels.shape[0] > 1000 and pixels.std() > 0.05  # a rendered page, not a blank one


@pytest.mark.slow
def test_stage_on_ray_equals_in_process(ray_cluster, sft_run, tiny_model, shared_data):
    local, on_ray = str(sft_run["tmp"] / "local"), str(sft_run["tmp"] / "ray")
    kw = {"benchmarks": ["socialiqa"], "items_per_benchmark": 8, "judge": {"enabled": False}, "report": False}
    a = run_evaluate(_eval_cfg(sft_run["root"], tiny_model, sft_run["table"], local, str(shared_data), **kw), use_ray=False)
    b = run_evaluate(_eval_cfg(sft_run["root"], tiny_model, sft_run["table"], on_ray, str(shared_data), **kw), use_ray=True)
    assert a["mcq"] == b["mcq"] and a["in_domain"] == b["in_domain"]
    for rel in ("mcq/fixed/loglik.parquet", "generations/base.parquet"):
        assert RunRoot(local).read_parquet(rel).equals(RunRoot(on_ray).read_parquet(rel))


def test_missing_model_and_benchmark_folder_are_clear_errors(sft_run, tmp_path):
    model = "unread"  # the table engine never opens its model, and no benchmark is scored here
    cfg = _eval_cfg(sft_run["root"], model, sft_run["table"], str(tmp_path / "o"), str(tmp_path / "no_data"),
                    models=[{"name": "tuned", "model": "tuned"}])
    with pytest.raises(FileNotFoundError, match="run `humanllm train` first"):
        run_evaluate(cfg, use_ray=False)
    cfg = _eval_cfg(sft_run["root"], model, sft_run["table"], str(tmp_path / "o2"), str(tmp_path / "no_data"),
                    in_domain=False, report=False)
    summary = run_evaluate(cfg, use_ray=False)  # no ../shared/data: benchmarks skipped with their reason
    assert all("skipped" in c for c in summary["benchmarks"].values()) and summary["mcq"] == []


@pytest.mark.slow
def test_person_ablation_trains_both_arms_on_ray(ray_cluster, tiny_model, s3_endpoint):
    """Both arms build the same examples (prompts with and without the person part) and train on Ray
    Train; the result names the held-out loss of each before and after. The run root is on S3 (moto):
    the arms read the main run's events and annotations in place and write their own folders there."""
    import boto3

    from evaluation.ablation import run as run_person_ablation

    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket="runs")
    storage = {"endpoint_url": s3_endpoint, "region": "us-east-1"}
    root = "s3://runs/run"
    write_sft_run_root(root, StorageConfig(**storage))
    cfg = parse_config({"run_root": root, "salt": "t", "storage": storage,
                        "synthesis": {"platforms": ["reddit", "blogger", "amazon"]},
                        "sft": {"leakage": {"benchmarks": []}, "split": {"test_fraction": 0.34}},
                        "train": {"model": tiny_model, "deepspeed": str(Path(__file__).parent.parent / "configs/deepspeed/zero2.yaml"),
                                  "wandb": {"mode": "offline"}},
                        "ablation": {"train": {"max_seq_len": 2048, "packing": False, "grad_accum": 2, "lr": 2e-3,
                                               "max_steps": 3, "eval_every": 3, "save_every": 3, "eval_examples": 8}}})
    summary = run_person_ablation(cfg)
    w, wo = summary["arms"]["with_person"], summary["arms"]["without_person"]
    assert w["train_examples"] == wo["train_examples"] > 0 and w["test_examples"] == wo["test_examples"] > 0
    assert w["mean_tokens"] > wo["mean_tokens"]  # the person part is gone from the prompts
    for arm in (w, wo):
        assert [s for s, _ in arm["eval_loss"]] == [0, 3] and all(np.isfinite(v) for _, v in arm["eval_loss"])
    out = cfg.layout().ablation_root()
    assert out.uri_of() == "s3://runs/run/ablation_person"
    assert out.read_bytes(RunLayout.ABLATION_CARD).decode().startswith("| arm |")
    assert out.exists(f"with_person/{RunLayout.sft_export('train.jsonl')}") and not out.exists(f"with_person/{RunLayout.EVENTS}")
    assert summary["gain_from_person_after"] == pytest.approx(wo["after"] - w["after"])


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_smollm2_on_vllm_answers_benchmarks_and_the_judge_parses(ray_cluster, sft_run, shared_data):
    """The real path: SmolLM2-135M-Instruct on ray.data.llm + vLLM (CPU build) answers benchmark items and
    in-domain prompts; transformers scores the options; the judge's verdicts parse (structured outputs)."""
    out = str(sft_run["tmp"] / "vllm")
    engine = {"backend": "vllm", "model": "smollm2", "dtype": "float32", "max_model_len": 4096, "batch_size": 16,
              "temperature": 0.7}
    # Sized to the CPU: two benchmarks of different shapes (3 and 2 options), two items each, for both
    # scoring methods; three in-domain tasks, one example each: item selection (no judge), a social QA
    # and a writing task, whose two judge verdicts go through the structured-output regex.
    tasks = ["item_selection", "sqa_general", "writing_imitation_type3"]
    cfg = parse_config({"run_root": sft_run["root"], "salt": "t", "evaluate": {
        "output_dir": out, "data_dir": str(shared_data), "benchmarks": ["socialiqa", "bigtom"],
        "items_per_benchmark": 2, "tasks": tasks, "examples_per_task": 1, "max_new_tokens": 48, "engine": engine,
        "bootstrap": 100, "models": [{"name": "base", "model": "smollm2"}],
        "judge": {"model": "smollm2", "max_tokens": 24}, "report": False}})
    summary = run_evaluate(cfg, use_ray=True)
    mcq = RunRoot(out).read_parquet("mcq/base/generate.parquet")
    assert mcq.num_rows == 4 and all(o.strip() for o in mcq["output"].to_pylist())
    ll = RunRoot(out).read_parquet("mcq/base/loglik.parquet")
    assert ll.num_rows == 4 and all(all(np.isfinite(s)) for s in ll["scores"].to_pylist())
    gens = RunRoot(out).read_parquet("generations/base.parquet")
    assert gens.num_rows == len(tasks) and not any(gens["engine_error"].to_pylist()) and all(gens["output"].to_pylist())
    judge = RunRoot(out).read_parquet("judge.parquet").to_pylist()
    assert len(judge) == len(tasks) - 1 and all(r["score"] is not None and 1 <= r["score"] <= 10 for r in judge)
    assert summary["judge_unparsed"] == 0
