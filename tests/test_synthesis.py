"""Synthesis without Ray: request building, the shared history prefix, parsing, retries, failures,
judge thresholds, resume and the fastText distillation, on a fixed-answer engine."""
from __future__ import annotations

import json

import pyarrow.compute as pc
import pytest

from core import schema as S
from core.config import ConfigError
from core.layout import RunLayout
from core.storage import RunRoot
from llm.render import Renderer
from ray_jobs.config import parse_config
from synthesis import requests as R
from synthesis.stage import run as run_synthesis
from tests.synth_fixtures import hand_made_events, table_config, write_run_root


def _tags_all_high(events) -> R.Tags:
    tags = R.Tags()
    for row in events.to_pylist():
        if row[S.KIND] == S.COMMENT:
            continue
        tags.quality[row[S.EVENT_ID]] = "high" if row[S.SOURCE_ROW] % 2 == 0 else "medium"
        tags.rewrite[row[S.EVENT_ID]] = row[S.TEXT]
        tags.v2_ok[row[S.EVENT_ID]] = True
        tags.rewrite_v2[row[S.EVENT_ID]] = row[S.TEXT]
    return tags


def test_tag_requests_cover_every_post_with_the_right_prompt():
    events = hand_made_events()["reddit/part-0000"]
    syn = parse_config({}).synthesis
    reqs = R.tag_requests(events, syn, Renderer(None))
    kinds = [r.kind for r in reqs]
    assert kinds.count("tag_v2") == events.num_rows
    assert kinds.count("tag_v1_comment") == 3 and kinds.count("tag_v1") == events.num_rows - 3
    comment = next(r for r in reqs if r.kind == "tag_v1_comment" and r.user_id == "u_alice")
    assert "Tips for a new city?" in comment.messages[1]["content"]  # the parent post is shown
    assert len({r.request_id for r in reqs}) == len(reqs)
    assert [r.request_id for r in R.tag_requests(events, syn, Renderer(None))] == [r.request_id for r in reqs]
    review = R.tag_requests(hand_made_events()["amazon/part-0000"], syn, Renderer(None))[0]
    assert "Kettle model 0" in review.messages[1]["content"] and "Rating: 4 out of 5" in review.messages[1]["content"]


def test_requests_of_one_user_share_the_history_prefix_in_time_order():
    events = hand_made_events()["reddit/part-0000"]
    syn = parse_config({"synthesis": {"post_history_tokens": 10_000}}).synthesis
    tags = _tags_all_high(events)
    renderer = Renderer(None)
    for build in (R.user_requests, R.post_requests):
        alice = [r for r in build(events, tags, syn, renderer) if r.user_id == "u_alice" and r.kind != "writing_style"]
        assert len(alice) > 2
        prompts = [r.messages[1]["content"] for r in alice]
        prefix = prompts[0].split("</history>")[0]
        assert all(p.startswith(prefix + "</history>") for p in prompts)
        dates = [line[1:11] for line in prefix.split("\n") if line.startswith("[2020")]
        assert dates == sorted(dates) and len(dates) == 6
    # a budget keeps the most recent posts that fit
    small = parse_config({"synthesis": {"user_history_tokens": 80}}).synthesis
    persona = next(r for r in R.user_requests(events, tags, small, renderer) if r.kind == "persona")
    text = persona.messages[1]["content"].split("</history>")[0]
    assert "[2020-01-06]" in text and "[2020-01-01]" not in text


def test_thin_users_get_no_user_or_post_requests_and_high_posts_go_first():
    events = hand_made_events()["reddit/part-0000"]
    syn = parse_config({"synthesis": {"max_posts": {"sqa": 2, "sqa_reason": 1, "scenario": 1, "summary": 3}}}).synthesis
    tags = _tags_all_high(events)
    reqs = R.post_requests(events, tags, syn, Renderer(None))
    assert {r.user_id for r in reqs} == {"u_alice"}  # u_bob has 2 posts < min 3 for reddit
    general = [r.subject_id for r in reqs if r.kind == "sqa_general"]
    assert all(tags.quality[e] == "high" for e in general) and len(general) == 2
    assert sum(r.kind == "sqa_reason" for r in reqs) == 1 and sum(r.kind == "summary" for r in reqs) == 3
    assert not [r for r in R.user_requests(events, tags, syn, Renderer(None)) if r.user_id == "u_bob"]


@pytest.fixture()
def table_run(tmp_path):
    write_run_root(str(tmp_path / "run"))
    cfg = table_config(str(tmp_path / "run"), str(tmp_path / "answers.json"))
    stats = run_synthesis(cfg, use_ray=False)
    return cfg, RunRoot(cfg.run_root), stats


def test_table_engine_run_parses_retries_fails_and_judges(table_run):
    cfg, root, stats = table_run
    ann = root.read_parquet("annotations", schema=S.ANNOTATION_SCHEMA)
    by_kind = {k: ann.filter(pc.equal(ann[S.ANNOTATION_KIND], k)) for k in set(ann[S.ANNOTATION_KIND].to_pylist())}
    # comments are tagged low: they feed nothing later; alice has 6 qualified posts, bob 2 (< 3)
    assert by_kind["tag_v1_comment"].num_rows == 3
    assert json.loads(by_kind["tag_v1_comment"][S.FIELDS][0].as_py())["quality"] == "low"
    assert by_kind["persona"].num_rows == 1 and by_kind["persona"][S.ATTEMPT][0].as_py() == 2  # empty, then valid
    assert by_kind["persona_amazon"].num_rows == 1
    assert by_kind["sqa_actions"].num_rows == 6 and all(by_kind["sqa_actions"][S.IS_NULL].to_pylist())
    fails = root.read_parquet("failures", schema=S.FAILURE_SCHEMA)
    assert set(fails[S.ANNOTATION_KIND].to_pylist()) == {"long_scenario", "judge_profile"}
    assert all(a == 2 for a in fails[S.ATTEMPT].to_pylist())  # max_attempts
    assert any("too short" in r for r in fails[S.REASON].to_pylist())
    j = {(r[S.ANNOTATION_KIND], r[S.PLATFORM]): r for r in root.read_parquet("judgements", schema=S.JUDGEMENT_SCHEMA).to_pylist()}
    assert j[("sqa_general", "reddit")][S.ACCEPTED] and j[("persona", "reddit")][S.ACCEPTED]
    assert not j[("single_story", "reddit")][S.ACCEPTED] and "coverage 7 < 8" in j[("single_story", "reddit")][S.REASON]
    assert not j[("profile", "reddit")][S.ACCEPTED] and "unparseable" in j[("profile", "reddit")][S.REASON]
    assert j[("persona_amazon", "amazon")][S.ACCEPTED] and "exempt" in j[("persona_amazon", "amazon")][S.REASON]
    assert ("sqa_actions", "reddit") not in j  # NULL answers are recorded, not judged
    kinds = stats["kinds"]
    assert kinds["sqa_general"]["acceptance_rate"] == 1.0 and kinds["single_story"]["accepted"] == 0
    assert kinds["persona"]["tokens_per_accepted"] > 0


def test_rerun_redoes_no_finished_request_and_gives_the_same_files(table_run):
    cfg, root, _ = table_run
    before = {rel: root.read_bytes(rel) for rel in root.list("annotations") + root.list("judgements")}
    again = run_synthesis(cfg, use_ray=False)
    assert all(p["answers"] == 0 and p["rounds"] == 0 for p in again["passes"].values())
    # a run killed mid-pass: half of the post pass's answers written, nothing finalised
    outputs = root.list(RunLayout.synth_outputs("post"))
    for rel in outputs[::2]:
        root.delete(rel)
    root.delete("annotations/post")
    root.delete("judgements")
    root.delete("_markers/synthesize-post")
    root.delete("_markers/synthesize-judge")
    lost = sum(1 for _ in outputs[::2])
    resumed = run_synthesis(cfg, use_ray=False)
    assert 0 < resumed["passes"]["post"]["answers"] and resumed["passes"]["tags"]["answers"] == 0
    assert lost <= resumed["passes"]["post"]["answers"] < sum(1 for _ in outputs) * cfg.synthesis.engine.batch_size
    after = {rel: root.read_bytes(rel) for rel in root.list("annotations") + root.list("judgements")}
    assert after == before


def test_thresholds_from_config_and_another_config_is_refused(table_run, tmp_path):
    cfg, root, _ = table_run
    loose = cfg.model_copy(update={"synthesis": cfg.synthesis.model_copy(update={
        "judge": cfg.synthesis.judge.model_copy(update={"thresholds": {"default": {"*": {"overall": 5, "*": 5}}}})})})
    with pytest.raises(RuntimeError, match="another configuration"):
        run_synthesis(loose, use_ray=False)
    run_synthesis(loose, use_ray=False, restart=True)
    j = root.read_parquet("judgements", schema=S.JUDGEMENT_SCHEMA)
    story = j.filter(pc.equal(j[S.ANNOTATION_KIND], "single_story"))
    assert all(story[S.ACCEPTED].to_pylist())


def test_distill_trains_fasttext_from_llm_tags(tmp_path):
    from synthesis.distill import distill, quality_labels

    write_run_root(str(tmp_path / "run"))
    cfg = table_config(str(tmp_path / "run"), str(tmp_path / "answers.json"), kinds=["tag_v1", "tag_v2"])
    run_synthesis(cfg, use_ray=False)
    labels = quality_labels(cfg.layout())
    assert sorted(set(labels["label"].to_pylist())) == ["high", "low"]
    assert labels.num_rows == 14 and labels["label"].to_pylist().count("low") == 3
    cfg = cfg.model_copy(update={"train_quality": cfg.train_quality.model_copy(
        update={"output_dir": str(tmp_path / "q"), "bucket": 10_000, "test_fraction": 0.3, "epoch": 25})})
    report = distill(cfg)
    model = report["models"]["shared"]
    assert set(model["per_label"]) == {"high", "low"} and model["n_test"] >= 2
    assert report["curate_quality_models"]["default"].endswith("quality-shared.bin")


def test_tags_cap_keeps_each_users_latest_posts():
    events = hand_made_events()["reddit/part-0000"]
    syn = parse_config({"synthesis": {"max_posts": {"tags": 2}}}).synthesis
    reqs = R.tag_requests(events, syn, Renderer(None))
    assert {(r.user_id, r.subject_id) for r in reqs} == {
        ("u_alice", "reddit:u_alice:5"), ("u_alice", "reddit:u_alice:6"), ("u_bob", "reddit:u_bob:2"), ("u_bob", "reddit:u_bob:3")}


def test_a_max_tokens_cap_lowers_only_its_kind_and_an_unknown_kind_is_refused():
    events = hand_made_events()["reddit/part-0000"]
    cfg = parse_config({"synthesis": {"max_tokens": {"tag_v2": 64}}})
    reqs = R.tag_requests(events, cfg.synthesis, Renderer(None))
    rows = R.to_table(reqs, "reddit/part-0000", None, cfg.synthesis, cfg.synthesis.engine).to_pylist()
    caps = {(r[S.ANNOTATION_KIND], json.loads(r[S.SAMPLING])["max_tokens"]) for r in rows}
    assert {n for k, n in caps if k == "tag_v2"} == {64} and min(n for k, n in caps if k == "tag_v1") > 64
    with pytest.raises(ConfigError, match="unknown generation kind"):
        parse_config({"synthesis": {"max_tokens": {"tag_v3": 64}}})


def test_generated_text_is_scrubbed_of_pii_before_it_is_written(tmp_path):
    """A persona that repeats an identifier from the history keeps a typed placeholder instead, in the
    raw answer and in the parsed fields, and the stage counts what it removed."""
    write_run_root(str(tmp_path / "run"))
    cfg = table_config(str(tmp_path / "run"), str(tmp_path / "answers.json"))
    table = json.loads((tmp_path / "answers.json").read_text())
    table["persona_amazon"] = ("The user is a practical shopper (write to jane.doe@example.com or call "
                               "+44 20 7946 0958) who cares about sturdy kitchen goods.")
    (tmp_path / "answers.json").write_text(json.dumps(table))
    stats = run_synthesis(cfg, use_ray=False)
    root = RunRoot(cfg.run_root)
    ann = root.read_parquet("annotations/user", schema=S.ANNOTATION_SCHEMA)
    persona = ann.filter(pc.equal(ann[S.ANNOTATION_KIND], "persona_amazon")).to_pylist()[0]
    assert "[EMAIL]" in persona[S.FIELDS] and "[PHONE]" in persona[S.FIELDS]
    assert "[EMAIL]" in persona[S.GENERATED_TEXT] and "[PHONE]" in persona[S.GENERATED_TEXT]
    raw = root.read_parquet(RunLayout.synth_outputs("user"), schema=S.OUTPUT_SCHEMA)
    assert not any("jane.doe" in t or "7946" in t for t in raw[S.GENERATED_TEXT].to_pylist() if t)
    found = raw.filter(pc.equal(raw[S.ANNOTATION_KIND], "persona_amazon"))[S.PII_FOUND].to_pylist()
    assert [json.loads(f) for f in found] == [{"email": 1, "phone": 1}]
    assert stats["passes"]["user"]["pii"] == {"email": 1, "phone": 1}
