"""Simulation fidelity (evaluation/simulation.py) without Ray or a model: the SFT fixture's people, some
held out, answered by table engines keyed `simulate_<task>` (one model answers the truth, another a
distractor). The prompts hold no trace of the target post, and hit rate, chance, rating error and
ROUGE-L equal a hand computation; intervals bracket the estimates; the report shows the section."""
from __future__ import annotations

import json
import re

import pyarrow as pa
import pytest

from core import schema as S
from core.layout import RunLayout
from core.storage import RunRoot
from evaluation.report import write_report
from evaluation.simulation import (build_cases, held_out_users, report_section, requests, RESULTS, run_simulation,
                                   untrained_users)
from llm.render import renderer_for
from llm.settings import EngineConfig
from ray_jobs.config import parse_config
from sft.stage import load_bundles, PLAN
from simulate.people import People
from simulate.tasks import build, SimulateRequest
from tests.sft_fixtures import long_text, write_sft_run_root

TRUE_ITEM = "Item 08 kettle"  # a_gus's latest review (the fixture's shopper 0, purchase 8)
RATINGS = {"a_gus": 4.0, "a_hal": 5.0, "a_ivy": 1.0, "a_jo": 2.0}


def _fake_embed(preds: list[str], refs: list[str]) -> list[float]:
    return [1.0 if p == r else 0.5 for p, r in zip(preds, refs)]


def _engine(tmp_path, name: str, answers: dict) -> EngineConfig:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(answers))
    return EngineConfig(backend="table", table=str(path), model=name, batch_size=4)


def _tokens(text: str) -> list[str]:  # rouge-score's tokenizer: lower case, alphanumeric runs
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).split()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("simfid") / "run")
    write_sft_run_root(path)
    cfg = parse_config({"run_root": path, "salt": "t", "synthesis": {"platforms": ["reddit", "blogger", "amazon"]},
                        "evaluate": {"bootstrap": 200, "simulation": {"enabled": True, "distractors": 4, "seed": 7}}})
    bundles = list(load_bundles(cfg))
    for b in bundles:  # the fixture rates everything 4: give each shopper's latest review its own rating
        if b.user_id in RATINGS:
            [p for p in b.posts if p.kind == "review"][-1].meta["rating"] = RATINGS[b.user_id]
    return cfg, bundles


def test_off_by_default_and_held_out_users_come_from_the_split_plan(run):
    cfg, _ = run
    assert parse_config({"run_root": "/tmp/x", "salt": "t"}).evaluate.simulation.enabled is False
    layout = cfg.layout()
    layout.root.write_json(layout.sft_work(PLAN), {"test_users": {"amazon": ["a_gus"], "reddit": ["r_ann"]}})
    try:
        assert held_out_users(layout) == ["a_gus", "r_ann"]
    finally:
        layout.root.delete(layout.sft_work(PLAN))


def test_untrained_people_are_the_runs_people_without_a_train_example(run, tmp_path):
    cfg, bundles = run
    layout = cfg.layout()
    everyone = sorted({b.user_id for b in bundles})
    trained = ["a_gus", "r_ann"]
    rel = layout.sft_split(S.TRAIN, "t")
    layout.root.write_parquet(rel, pa.table({S.USER_ID: trained * 2}))
    try:
        assert untrained_users(layout, (b.user_id for b in bundles)) == sorted(set(everyone) - set(trained))
        res = run_simulation(cfg, layout, {}, bundles=bundles, embed=None, out=RunRoot(str(tmp_path)))
        assert res["held_out_people"]["held_out"] == len(everyone) - 2 and res["held_out_people"]["people"] == "untrained"
    finally:
        layout.root.delete(rel)


def test_the_prompts_hold_no_trace_of_the_target(run):
    cfg, bundles = run
    cases, cut, counts = build_cases(bundles, ["a_gus", "r_ann"], cfg.evaluate.simulation, cfg.sft)
    assert counts["cases"] == {"choose": 1, "rate": 1, "next_post": 1}
    by_task = {c.task: c for c in cases}
    choose, rate, post = by_task["choose"], by_task["rate"], by_task["next_post"]
    assert choose.truth == TRUE_ITEM and len(choose.item.candidates) == 5 and TRUE_ITEM in choose.item.candidates
    assert len(set(choose.item.candidates)) == 5 and rate.truth == 4.0 and rate.item.situation == TRUE_ITEM
    real_post = long_text(4)  # r_ann's latest submission (then 3 later comments, also cut)
    assert post.truth == real_post and post.item.situation == "Title 0-4"
    assert cut["r_ann"].posts[-1].event_id == "reddit:r_ann:3" and len(cut["a_gus"].posts) == 8
    rows, prompts, rejects = requests(cfg, cases, People(cut.values(), cfg.sft), renderer_for("table", "m", None))
    assert not rejects and len(rows) == 3
    text = {c.task: "\n".join(m["content"] for m in prompts[c.item.request_id].messages) for c in cases}
    target_review = next(p for b in bundles if b.user_id == "a_gus" for p in b.posts if p.event_id == choose.target_event_id)
    for task in ("choose", "rate"):
        assert target_review.text.strip()[:60] not in text[task]
    assert text["choose"].count(TRUE_ITEM) == 1  # only as a candidate, never in the purchase history
    assert real_post[:60] not in text["next_post"] and "Entry 3." in text["next_post"]  # earlier posts are shown
    # the uncut bundle would have shown the target: the cut is what keeps it out
    whole = next(b for b in bundles if b.user_id == "r_ann")
    leaky = build(whole, SimulateRequest(user_id="r_ann", platform="reddit", task="next_post", situation="Title 0-4"), cfg.sft)
    assert real_post[:60] in "\n".join(m["content"] for m in leaky.messages)


def test_scores_equal_a_hand_computation_and_the_report_shows_them(run, tmp_path):
    cfg, bundles = run
    cases, _, _ = build_cases(bundles, ["a_gus", "r_ann"], cfg.evaluate.simulation, cfg.sft)
    distractor = next(c for c in next(c for c in cases if c.task == "choose").item.candidates if c != TRUE_ITEM)
    real_post = long_text(4)
    prefix = " ".join(real_post.split()[:10])
    engines = {"tuned": _engine(tmp_path, "tuned", {"simulate_choose": json.dumps({"choice": TRUE_ITEM}),
                                                    "simulate_rate": '{"rating": 4}', "simulate_next_post": prefix}),
               "base": _engine(tmp_path, "base", {"simulate_choose": json.dumps({"choice": distractor}),
                                                  "simulate_rate": '```json\n{"rating": 1}\n```',
                                                  "simulate_next_post": "zebra quantum"})}
    out = RunRoot(str(tmp_path / "eval"))
    res = run_simulation(cfg, cfg.layout(), engines, bundles=bundles, held_out=["a_gus", "r_ann"], embed=_fake_embed,
                         out=out)
    assert json.loads(out.read_bytes(RESULTS)) == json.loads(json.dumps(res))
    got = {(r["model"], r["task"], r["metric"]): r for r in res["results"]}
    k, n = len(_tokens(prefix)), len(_tokens(real_post))
    hand = {("tuned", "choose", "hit_rate"): 1.0, ("base", "choose", "hit_rate"): 0.0,
            ("tuned", "rate", "mae"): 0.0, ("tuned", "rate", "exact"): 1.0,
            ("base", "rate", "mae"): 3.0, ("base", "rate", "exact"): 0.0,
            ("tuned", "next_post", "rouge_l"): 2 * k / (k + n), ("base", "next_post", "rouge_l"): 0.0,
            ("tuned", "next_post", "embedding_sim"): 0.5}
    for key, value in hand.items():
        assert got[key]["value"] == pytest.approx(value) and got[key]["n"] == 1, key
        assert got[key]["ci_low"] <= got[key]["value"] <= got[key]["ci_high"]
    assert got[("tuned", "choose", "hit_rate")]["chance"] == pytest.approx(0.2) == res["chance_choose"]
    assert got[("tuned", "rate", "mae")]["chance"] is None
    section = report_section(res)
    assert "<h2>Simulation fidelity</h2>" in section
    assert ("<tr><td>choose</td><td>hit rate</td><td>1</td><td>1.000 [1.000, 1.000]</td>"
            "<td>0.000 [0.000, 0.000]</td><td>0.200</td></tr>") in section
    assert "<th>tuned</th><th>base</th><th>chance</th>" in section
    assert "<td>rate</td><td>mean absolute error</td><td>1</td><td>0.000 [0.000, 0.000]</td><td>3.000 [3.000, 3.000]</td>" in section
    assert report_section(None) == "" and report_section({"results": []}) == ""
    summary = {"models": {"tuned": {"backend": "table", "model": "tuned"}, "base": {"backend": "table", "model": "base"}},
               "benchmarks": {}, "mcq": [], "in_domain": [], "pairwise": [], "in_domain_examples": 0,
               "generation_errors_in_domain": {}, "judge_unparsed": 0}
    layout = RunLayout(cfg.run_root, cfg.storage, eval_uri=str(tmp_path / "report"))
    write_report(cfg, layout, summary)
    assert "Simulation fidelity" not in layout.eval_root.read_bytes(layout.EVAL_REPORT).decode()
    write_report(cfg, layout, {**summary, "simulation": res})
    page = layout.eval_root.read_bytes(layout.EVAL_REPORT).decode()
    assert section in page


def test_many_people_intervals_and_resume(run, tmp_path):
    cfg, bundles = run
    shoppers = sorted(RATINGS)
    engines = {"tuned": _engine(tmp_path, "tuned", {"simulate_choose": json.dumps({"choice": TRUE_ITEM}),
                                                    "simulate_rate": '{"rating": 2}', "simulate_next_post": "x"})}
    out = RunRoot(str(tmp_path / "eval"))
    res = run_simulation(cfg, cfg.layout(), engines, bundles=bundles, held_out=shoppers, embed=None, out=out)
    got = {(r["task"], r["metric"]): r for r in res["results"]}
    # only a_gus has the answered title as the truth; the others miss (a title not among theirs is unparsable)
    assert got[("choose", "hit_rate")]["value"] == pytest.approx(0.25) and got[("choose", "hit_rate")]["n"] == 4
    assert got[("rate", "mae")]["value"] == pytest.approx((2 + 3 + 1 + 0) / 4)  # |2-4|, |2-5|, |2-1|, |2-2|
    assert got[("rate", "exact")]["value"] == pytest.approx(0.25)
    for r in res["results"]:
        assert r["ci_low"] <= r["value"] <= r["ci_high"] and r["ci_low"] < r["ci_high"]
    assert res["held_out_people"]["cases"]["next_post"] == 0
    # a rerun reuses the finished model (another table is not asked), another setting recomputes
    (tmp_path / "tuned.json").write_text(json.dumps({"simulate_choose": "{}", "simulate_rate": "{}"}))
    again = run_simulation(cfg, cfg.layout(), engines, bundles=bundles, held_out=shoppers, embed=None, out=out)
    assert again["results"] == res["results"]
    other = cfg.model_copy(update={"evaluate": cfg.evaluate.model_copy(update={
        "simulation": cfg.evaluate.simulation.model_copy(update={"distractors": 2})})})
    redone = run_simulation(other, cfg.layout(), engines, bundles=bundles, held_out=shoppers, embed=None, out=out)
    hit = next(r for r in redone["results"] if r["metric"] == "hit_rate")
    assert hit["value"] == 0.0 and hit["rejects"] == {"unparsable": 4} and hit["chance"] == pytest.approx(1 / 3)
