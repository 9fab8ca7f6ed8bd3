"""`humanllm simulate` in batch without Ray or a model: the SFT fixture's people through the table engine
(answers keyed `simulate_<task>`). Every supporting person is asked once and the answers parse; a
malformed answer, an engine error, an unsupported person or request is a counted reject; a rerun after
a partial run or a lost parts/ file sends only the missing requests and writes the same answers.parquet
as a clean run; another configuration in the same folder is refused unless restarted."""
from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core import schema as S
from core.layout import RunLayout
from core.storage import RunRoot
from llm.settings import EngineConfig
from ray_jobs.config import parse_config
from simulate.batch import BatchInputError, read_situations, run
from tests.sft_fixtures import BLOG_USERS, REDDIT_USERS, SHOPPERS, write_sft_run_root

ITEM = "Item 30 kettle"
CANDIDATES = ["Item 30 kettle", "Item 31 scarf", "Item 32 boots"]
ANSWERS = {"simulate_rate": '{"rating": 4}', "simulate_next_post": "A new post ({request_id}).",
           "simulate_choose": '```json\n{"choice": "Item 31 scarf"}\n```'}


def _engine(tmp_path, answers: dict, name: str = "answers.json") -> EngineConfig:
    path = tmp_path / name
    path.write_text(json.dumps(answers))
    return EngineConfig(backend="table", table=str(path), batch_size=3)


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("simulate_batch") / "run")
    write_sft_run_root(path)
    return parse_config({"run_root": path, "salt": "t", "synthesis": {"platforms": ["reddit", "blogger", "amazon"]}})


def _answers(out: str) -> pa.Table:
    return RunRoot(out).read_parquet(RunLayout.SIMULATE_ANSWERS)


def test_rate_asks_every_supporting_person_once_and_the_ratings_parse(cfg, tmp_path):
    stats = run(cfg, "rate", situation=ITEM, engine=_engine(tmp_path, ANSWERS), use_ray=False)
    out = cfg.layout().simulate_dir("rate")
    assert stats["output"] == out and out.endswith("/simulate/rate")
    table = _answers(out)
    assert table.column(S.USER_ID).to_pylist() == sorted(SHOPPERS)  # only the shoppers support rate
    assert [json.loads(a)["rating"] for a in table["answer"].to_pylist()] == [4] * len(SHOPPERS)
    assert set(table["situation"].to_pylist()) == {ITEM} and set(table[S.TASK].to_pylist()) == {"rate"}
    assert table["reject"].null_count == len(SHOPPERS) and min(table[S.PROMPT_TOKENS].to_pylist()) > 0
    assert stats["requests"] == stats["answered"] == stats["this_run"]["sent"] == len(SHOPPERS)
    assert stats["people"]["unsupported"] == {"blogger": 3, "reddit": 3} and stats["complete"]
    on_disk = json.loads(RunRoot(out).read_bytes(RunLayout.SIMULATE_STATS))
    assert on_disk["answered"] == len(SHOPPERS) and on_disk["rejects"] == {}
    again = run(cfg, "rate", situation=ITEM, engine=_engine(tmp_path, ANSWERS), use_ray=False)
    assert again["this_run"]["sent"] == 0 and again["answered"] == len(SHOPPERS)  # nothing left to send


def test_next_post_answers_each_person_and_counts_what_a_request_lacks(cfg, tmp_path):
    out = str(tmp_path / "next_post")
    stats = run(cfg, "next_post", out=out, engine=_engine(tmp_path, ANSWERS), use_ray=False)
    table = _answers(out)
    people = sorted(REDDIT_USERS + BLOG_USERS + SHOPPERS)
    assert table.column(S.USER_ID).to_pylist() == people
    rows = {r[S.USER_ID]: r for r in table.to_pylist()}
    for user in REDDIT_USERS + BLOG_USERS:  # each person's own answer (the table fills in the request id)
        assert json.loads(rows[user]["answer"]) == {"text": f"A new post ({rows[user][S.REQUEST_ID]})."}
    for user in SHOPPERS:  # an Amazon post is a review: without the item the request is counted, not sent
        assert rows[user]["reject"] == "unsupported" and "the title of the item" in rows[user][S.ERROR]
        assert rows[user]["answer"] is None
    assert stats["answered"] == 6 and stats["rejects"] == {"unsupported": 4} and stats["this_run"]["sent"] == 6
    only = run(cfg, "next_post", people=2, platform="blogger", out=str(tmp_path / "blog"),
               engine=_engine(tmp_path, ANSWERS), use_ray=False)
    assert _answers(str(tmp_path / "blog")).column(S.USER_ID).to_pylist() == ["b_dan", "b_eve"]
    assert only["people"]["selected"] == 2 and only["people"]["over_limit"] == 1


def test_malformed_answers_and_engine_errors_are_counted_rejects(cfg, tmp_path):
    bad = _engine(tmp_path, {"simulate_rate": "four stars out of five"}, "bad.json")
    stats = run(cfg, "rate", situation=ITEM, out=str(tmp_path / "bad"), engine=bad, use_ray=False)
    table = _answers(str(tmp_path / "bad"))
    assert stats["rejects"] == {"unparsable": 4} and stats["answered"] == 0 and stats["complete"]
    assert set(table["reject"].to_pylist()) == {"unparsable"}
    assert all("not JSON" in e for e in table[S.ERROR].to_pylist())
    assert table[S.GENERATED_TEXT].to_pylist() == ["four stars out of five"] * 4  # the raw answer is kept
    out_of_range = _engine(tmp_path, {"simulate_rate": '{"rating": 9}'}, "range.json")
    stats = run(cfg, "rate", situation=ITEM, out=str(tmp_path / "range"), engine=out_of_range, use_ray=False)
    assert stats["rejects"] == {"unparsable": 4}
    # No answer for the kind: an engine error, resent once in the run, then kept as a reject.
    think = run(cfg, "think", situation="A storm cuts the power for a day.", out=str(tmp_path / "think"),
                engine=bad, use_ray=False)
    assert think["rejects"] == {"engine_error": 6} and think["this_run"]["sent"] == 12
    assert think["people"]["unsupported"] == {"amazon": 4}
    # An explain request names a past action the person does not have: unsupported, not sent.
    explain = run(cfg, "explain", situation="nothing like this was ever written", out=str(tmp_path / "explain"),
                  engine=bad, use_ray=False)
    assert explain["rejects"] == {"unsupported": 6} and explain["this_run"]["sent"] == 0


def test_a_partial_run_or_a_lost_part_resumes_to_the_clean_runs_output(cfg, tmp_path):
    engine = _engine(tmp_path, ANSWERS)
    kw = {"situation": "moving to a new city", "engine": engine, "use_ray": False, "flush_rows": 2}
    clean = tmp_path / "clean"
    run(cfg, "next_post", out=str(clean), **kw)
    expected = (clean / RunLayout.SIMULATE_ANSWERS).read_bytes()
    assert pq.read_table(clean / RunLayout.SIMULATE_ANSWERS)["reject"].null_count == 10  # all answered

    resumed = tmp_path / "resumed"
    first = run(cfg, "next_post", people=3, out=str(resumed), **kw)  # fewer people first
    assert first["this_run"]["sent"] == 3 and first["complete"]
    killed = run(cfg, "next_post", out=str(resumed), limit=4, **kw)  # stops after 4 more: as if killed
    assert killed["this_run"]["sent"] == 4 and killed["pending"] == 3 and not killed["complete"]
    assert not (resumed / RunLayout.SIMULATE_ANSWERS).exists()
    done = run(cfg, "next_post", out=str(resumed), **kw)
    assert done["this_run"]["sent"] == 3 and done["complete"]
    assert (resumed / RunLayout.SIMULATE_ANSWERS).read_bytes() == expected

    lost = sorted((resumed / RunLayout.SIMULATE_PARTS).glob("*.parquet"))[0]
    n_lost = pq.read_table(lost).num_rows
    lost.unlink()
    again = run(cfg, "next_post", out=str(resumed), **kw)
    assert again["this_run"]["sent"] == n_lost > 0
    assert (resumed / RunLayout.SIMULATE_ANSWERS).read_bytes() == expected


def test_situations_file_choose_and_input_errors(cfg, tmp_path):
    path = tmp_path / "situations.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"user_id": "a_hal", "candidates": CANDIDATES}, {"user_id": "a_gus", "candidates": CANDIDATES},
        {"user_id": "a_gus", "candidates": CANDIDATES[:1]}, {"user_id": "r_ann", "candidates": CANDIDATES},
        {"user_id": "nobody", "candidates": CANDIDATES}]) + "\n")
    situations = read_situations(str(path))
    out = str(tmp_path / "choose")
    stats = run(cfg, "choose", situations=situations, out=out, engine=_engine(tmp_path, ANSWERS), use_ray=False)
    table = _answers(out)
    assert table.column(S.USER_ID).to_pylist() == ["a_gus", "a_gus", "a_hal"]
    assert stats["people"]["unknown"] == 1 and stats["people"]["unsupported"] == {"reddit": 1}
    assert stats["answered"] == 2 and stats["rejects"] == {"unsupported": 1}  # one candidate is not a choice
    assert {json.loads(a)["choice"] for a in table["answer"].drop_null().to_pylist()} == {"Item 31 scarf"}
    with pytest.raises(BatchInputError, match="needs --situation"):
        run(cfg, "comment", engine=_engine(tmp_path, ANSWERS), use_ray=False)
    with pytest.raises(BatchInputError, match="choose needs --situations"):
        run(cfg, "choose", engine=_engine(tmp_path, ANSWERS), use_ray=False)
    with pytest.raises(BatchInputError, match="runs on Ray: drop --no-ray"):
        run(cfg, "rate", situation=ITEM, engine=EngineConfig(backend="vllm"), use_ray=False)
    (tmp_path / "broken.jsonl").write_text('{"situation": "no user"}\n')
    with pytest.raises(BatchInputError, match="row 1: needs a non-empty string `user_id`"):
        read_situations(str(tmp_path / "broken.jsonl"))


def test_another_configuration_is_refused_unless_restarted(cfg, tmp_path):
    out = str(tmp_path / "conf")
    run(cfg, "rate", situation=ITEM, out=out, engine=_engine(tmp_path, ANSWERS), use_ray=False)
    hotter = cfg.model_copy(update={"serve": cfg.serve.model_copy(update={"temperature": 1.2})})
    with pytest.raises(RuntimeError, match="another configuration"):
        run(hotter, "rate", situation=ITEM, out=out, engine=_engine(tmp_path, ANSWERS), use_ray=False)
    stats = run(hotter, "rate", situation=ITEM, out=out, engine=_engine(tmp_path, ANSWERS), use_ray=False,
                restart=True)
    assert stats["this_run"]["sent"] == 4 and stats["answered"] == 4


def test_the_command_runs_without_ray(cfg, tmp_path):
    from ray_jobs.cli import main

    table = tmp_path / "answers.json"
    table.write_text(json.dumps(ANSWERS))
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"run_root": cfg.run_root, "salt": "t",
                                  "synthesis": {"platforms": ["reddit", "blogger", "amazon"]}}))
    out = str(tmp_path / "cli")
    argv = ["simulate", "--config", str(config), "--task", "rate", "--people", "2", "--situation", ITEM,
            "--out", out, "--no-ray", "--backend", "table", "--set", f"serve.engine.table={table}"]
    assert main(argv) == 0
    assert _answers(out).column(S.USER_ID).to_pylist() == sorted(SHOPPERS)[:2]


def test_an_s3_run_root_and_situations_file(tmp_path, s3_endpoint):
    """The people, the situations file and the answers all through the run's storage (moto S3)."""
    import boto3

    from core.config import StorageConfig

    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="runs")
    storage = {"endpoint_url": s3_endpoint, "region": "us-east-1"}
    write_sft_run_root("s3://runs/run", StorageConfig(**storage))
    s3.put_object(Bucket="runs", Key="in/rate.jsonl", Body=b'{"user_id": "a_ivy", "situation": "Item 33 lamp"}\n')
    cfg = parse_config({"run_root": "s3://runs/run", "salt": "t", "storage": storage,
                        "synthesis": {"platforms": ["reddit", "blogger", "amazon"]}})
    situations = read_situations("s3://runs/in/rate.jsonl", cfg.storage)
    stats = run(cfg, "rate", situations=situations, engine=_engine(tmp_path, ANSWERS), use_ray=False)
    assert stats["output"] == "s3://runs/run/simulate/rate" and stats["answered"] == 1
    out = RunRoot(stats["output"], cfg.storage)
    assert out.read_parquet(RunLayout.SIMULATE_ANSWERS).to_pylist()[0]["situation"] == "Item 33 lamp"
    assert run(cfg, "rate", situations=situations, engine=_engine(tmp_path, ANSWERS), use_ray=False)["this_run"]["sent"] == 0
