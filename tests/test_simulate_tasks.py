"""The simulate service's prompt layer (no Ray, no model): people loaded from a run root as build-sft loads
them, a prompt for every task from the person's persona/profile and latest history, structured answers
(JSON schema, parse), what an unsupported request lacks, nothing identifying in the people listing, and
the SFT builders and simulate rendering the same prompt text (one place builds both)."""
from __future__ import annotations

import copy
import json
import re
from datetime import datetime

import pyarrow as pa
import pytest
from pydantic import ValidationError

from core import schema as S
from core.layout import RunLayout
from core.storage import RunRoot
from ray_jobs.config import parse_config
from sft.build import item_names
from sft.bundle import build_bundles, UserBundle
from sft.common import BuildContext
from sft.registry import build_user
from sft.settings import SFTConfig
from sft.writing_tasks import parent_post
from simulate.people import People, UnknownPerson
from simulate.tasks import build, SimulateRequest, supported, TASKS, Unsupported
from tests.sft_fixtures import ITEMS, PERSONA, PROFILE, SQA, STYLE, tables

PLATFORMS = ("reddit", "blogger", "amazon")
AUTHORS = {u: f"RealAuthor{u.title().replace('_', '')}" for u in
           ("r_ann", "r_ben", "r_cat", "b_dan", "b_eve", "b_fay", "a_gus", "a_hal", "a_ivy", "a_jo")}


def _bundles() -> dict[str, UserBundle]:
    out = {}
    for platform in PLATFORMS:
        t = tables(platform)
        for b in build_bundles(t["events"], t["tags"], t["user"], t["post"], t["judgements"]):
            out[b.user_id] = b
    return out


@pytest.fixture(scope="module")
def bundles() -> dict[str, UserBundle]:
    return _bundles()


def _req(user: str, task: str, situation: str | None = None, candidates: list[str] | None = None, **kw):
    platform = kw.pop("platform", None) or {"r": "reddit", "b": "blogger", "a": "amazon"}[user[0]]
    return SimulateRequest(user_id=user, platform=platform, task=task, situation=situation,
                           candidates=candidates, **kw)


def _text(prompt) -> str:
    return "\n\n".join(m["content"] for m in prompt.messages)


# One request per task: (user, situation, candidates, what of the person's latest history it must show).
CANDIDATES = ["Item 30 kettle", "Item 31 scarf", "Item 32 boots"]
REQUESTS = {
    "next_post": ("r_ann", None, None, "Entry 4."),
    "comment": ("r_ann", "Question 9\n\nWhat would you do?", None, "Entry 7."),
    "rate": ("a_gus", "Item 30 kettle", None, "Entry 208."),
    "choose": ("a_gus", None, CANDIDATES, ITEMS["B008"]),
    "think": ("b_dan", "Your sister calls at midnight to borrow money.", None, "Entry 105."),
    "explain": ("r_ann", "reddit:r_ann:0", None, "Entry 7."),
}


def test_every_task_builds_a_prompt_from_the_person_and_recent_history(bundles):
    assert set(REQUESTS) == set(TASKS)
    for task, (user, situation, candidates, latest) in REQUESTS.items():
        b = bundles[user]
        prompt = build(b, _req(user, task, situation, candidates))
        assert [m["role"] for m in prompt.messages] == ["system", "user"], task
        text = _text(prompt)
        assert PERSONA in text and PROFILE in text, task  # the one the SFT prompt shows, the other in the system part
        assert STYLE in text, task
        assert latest in text, task  # the person's latest post (or purchase) is shown
        assert task in supported(b)
        if situation and task != "explain":
            assert situation.split("\n")[0] in prompt.messages[1]["content"], task
        assert prompt.sft_task and prompt.example_id and isinstance(prompt.seed, int)
        again = build(b, _req(user, task, situation, candidates))
        assert again.messages == prompt.messages  # deterministic for the same request
    # the latest posts, oldest first, at most the SFT builders' upper bound (5)
    prompt = build(bundles["b_eve"], _req("b_eve", "next_post", "moving house"))
    shown = re.findall(r"^\[\d\] \((\d{4}-\d\d-\d\d)\)", prompt.messages[1]["content"], flags=re.M)
    posts = bundles["b_eve"].posts
    assert shown == [p.ts.strftime("%Y-%m-%d") for p in posts[-5:]]
    assert "moving house" in prompt.messages[1]["content"]


def test_structured_tasks_have_a_json_schema_and_parse_strictly(bundles):
    jsonschema = pytest.importorskip("jsonschema")
    rate = build(bundles["a_gus"], _req("a_gus", "rate", "Item 30 kettle"))
    choose = build(bundles["a_gus"], _req("a_gus", "choose", candidates=CANDIDATES))
    for prompt, good, bad in (
            (rate, {"rating": 4}, [{"rating": 0}, {"rating": 6}, {"rating": "4"}, {}, {"rating": 4, "why": "x"}]),
            (choose, {"choice": "Item 31 scarf"}, [{"choice": "Item 99 hat"}, {"pick": "Item 31 scarf"}])):
        rf = prompt.response_format
        assert rf["type"] == "json_schema" and rf["json_schema"]["name"] in ("rating", "choice")
        schema = rf["json_schema"]["schema"]
        jsonschema.Draft202012Validator.check_schema(schema)
        jsonschema.validate(good, schema)
        for b in bad:
            with pytest.raises(jsonschema.ValidationError):
                jsonschema.validate(b, schema)
        assert prompt.parse(json.dumps(good)) == good
        assert prompt.parse(f"```json\n{json.dumps(good)}\n```") == good
        for b in bad:
            with pytest.raises(ValueError, match=prompt.task):
                prompt.parse(json.dumps(b))
        with pytest.raises(ValueError, match="not JSON"):
            prompt.parse("I think 4 stars")
        assert "JSON" in prompt.messages[0]["content"]
    assert choose.response_format["json_schema"]["schema"]["properties"]["choice"]["enum"] == CANDIDATES
    for text in ("4.5", '{"rating": 4.5}', '{"rating": true}', '["rating", 4]'):
        with pytest.raises(ValueError):
            rate.parse(text)
    assert 'gives "Item 30 kettle"' in rate.messages[1]["content"]  # the rating question of simulate.yaml
    for task, (user, situation, candidates, _) in REQUESTS.items():
        if task not in ("rate", "choose"):
            prompt = build(bundles[user], _req(user, task, situation, candidates))
            assert prompt.response_format is None and prompt.parse("  Hello there.\n") == {"text": "Hello there."}
            assert prompt.words and f"about {prompt.words}" in prompt.messages[1]["content"]


def test_unsupported_requests_name_what_is_missing(bundles):
    def missing(user, task, situation=None, candidates=None, bundle=None, **kw):
        with pytest.raises(Unsupported) as err:
            build(bundle or bundles[user], _req(user, task, situation, candidates, **kw))
        assert isinstance(err.value, ValueError) and str(err.value) == f"{task}: needs {err.value.missing}"
        return err.value.missing

    assert missing("r_ann", "explain").startswith("situation: the past action to explain")
    assert missing("r_ann", "explain", "reddit:r_ben:0").startswith("situation: a past action of this person")
    assert missing("r_ann", "explain", "a dragon ate my homework").startswith("situation: a past action")
    assert missing("a_gus", "choose", candidates=["Item 30 kettle"]).startswith("candidates: at least 2")
    assert missing("a_gus", "choose").startswith("candidates: at least 2")
    assert missing("r_ann", "comment") == "situation: the post to reply to"
    assert missing("a_gus", "rate") == "situation: the title of the item rated"
    assert missing("a_gus", "next_post") == "situation: the title of the item reviewed"
    assert missing("r_ann", "think") == "situation: the situation the person thinks about"
    assert missing("b_dan", "comment", "a post").startswith("a person on reddit")
    assert missing("r_ann", "rate", "Item 30 kettle").startswith("a person on amazon")
    assert missing("a_gus", "think", "a situation").startswith("a person on reddit or twitter or blogger")
    assert missing("r_ann", "next_post", platform="blogger").startswith("platform: this person's data is from reddit")
    bare = copy.deepcopy(bundles["r_ann"])
    bare.persona = bare.profile = None
    assert missing("r_ann", "comment", "a post", bundle=bare) == "an accepted persona or profile of the person"
    assert missing("r_ann", "explain", "reddit:r_ann:0", bundle=bare) == "an accepted persona or profile of the person"
    assert supported(bare) == ["next_post"]
    no_posts = copy.deepcopy(bundles["b_dan"])
    for p in no_posts.posts:
        p.quality = "low"
    assert "past posts of the person" in missing("b_dan", "next_post", bundle=no_posts)
    # a past action named by a quote of its text (3+ words), not only by its event id
    quoted = build(bundles["r_ann"], _req("r_ann", "explain", "the dishes   AGAIN and we agreed"))
    assert "Why did the person write this?" in quoted.messages[1]["content"]
    assert "Entry 6." in quoted.messages[1]["content"]  # the latest post holding the quote


def test_request_validation_names_the_field():
    def field_of(**kw) -> tuple:
        data = {"user_id": "u", "platform": "reddit", "task": "next_post", **kw}
        with pytest.raises(ValidationError) as err:
            SimulateRequest.model_validate(data)
        return err.value.errors()[0]["loc"]

    assert field_of(n=0) == ("n",) and field_of(n=9) == ("n",)
    assert field_of(task="dance") == ("task",)
    assert field_of(platform="myspace") == ("platform",)
    assert field_of(user_id="") == ("user_id",)
    assert field_of(candidates=["a", "b"]) == ("candidates",)  # only choose takes candidates
    assert field_of(task="choose", candidates=["a", "a"]) == ("candidates",)
    assert field_of(task="choose", candidates=["a", " "]) == ("candidates",)
    assert field_of(task="choose", situation="a gift") == ("situation",)
    assert field_of(colour="red") == ("colour",)
    ok = SimulateRequest.model_validate({"user_id": "u", "platform": "amazon", "task": "choose",
                                         "candidates": [" a ", "b"], "n": 8})
    assert ok.candidates == ["a", "b"] and ok.n == 8 and ok.situation is None


def test_sft_builders_and_simulate_render_the_same_prompt(bundles):
    """For the same person, post and example id, the SFT example's prompt is the simulate user message."""
    # explain: the past action's own SFT example (sqa_reason), with no alignment at all
    for user in ("r_ann", "r_ben", "b_dan"):
        b = bundles[user]
        examples = [e for e in build_user(b, BuildContext(SFTConfig())) if e.task == "sqa_reason"]
        assert examples
        for ex in examples:
            sim = build(b, _req(user, "explain", ex.subject_id))
            assert sim.messages[1]["content"] == ex.messages[0]["content"] and sim.example_id == ex.example_id

    def sft_prompt(b: UserBundle, cfg: SFTConfig, task: str, subject: str, example_id: str, items=None,
                   draws=None) -> str:
        ctx = BuildContext(cfg, items or {})
        ctx.example_id = lambda *_: example_id  # the simulate request's id picks the paraphrase and person
        if draws is not None:  # the builder's random draws from another example's stream
            ctx.rng = lambda _: BuildContext(cfg).rng(draws)
        (ex,) = [e for e in build_user(b, ctx) if e.task == task and e.subject_id == subject]
        return ex.messages[0]["content"]

    cfg = SFTConfig(history_posts=(5, 5))  # the SFT builder shows the latest 5 too, as simulate does
    for user in ("r_ann", "r_ben", "r_cat"):
        b = bundles[user]
        # comment: the person as of just before their last comment, replying to that comment's post
        post = b.posts[-1]
        before = copy.copy(b)
        before.posts = b.posts[:-1]
        sim = build(before, _req(user, "comment", parent_post(post)), cfg)
        assert sim.messages[1]["content"] == sft_prompt(b, cfg, "personalized_comment", post.event_id, sim.example_id)
        assert "Entry" in sim.messages[1]["content"]
    for user in ("r_ben", "r_cat"):
        # next_post with a topic: writing imitation type 1 of their last submission
        b = bundles[user]
        post = [p for p in b.posts if p.kind == "submission"][-1]
        before = copy.copy(b)
        before.posts = b.posts[:b.posts.index(post)]
        sim = build(before, _req(user, "next_post", post.summary), cfg)
        assert sim.messages[1]["content"] == sft_prompt(b, cfg, "writing_imitation_type1", post.event_id,
                                                        sim.example_id)
    # choose: item selection of the last purchase from the persona and the purchase history, the
    # candidates the SFT builder drew passed as the request's
    b = copy.copy(bundles["a_gus"])
    b.profile = None
    cfg = SFTConfig(item_inputs={"both": 1.0})
    items = item_names(tables("amazon")["events"])
    target = b.posts[-1]
    (ex,) = [e for e in build_user(b, BuildContext(cfg, items)) if e.task == "item_selection"]
    candidates = re.findall(r"^\d+\. (.+)$", ex.messages[0]["content"], flags=re.M)
    assert len(candidates) == 20 and ex.target in candidates
    before = copy.copy(b)
    before.posts = b.posts[:-1]
    sim = build(before, _req("a_gus", "choose", candidates=candidates), cfg)
    assert sim.messages[1]["content"] == sft_prompt(b, cfg, "item_selection", target.event_id, sim.example_id,
                                                    items, draws=ex.example_id)
    assert PERSONA in sim.messages[1]["content"] and "Item 07 sock" in sim.messages[1]["content"]


def _write_run_root(path: str) -> None:
    """The fixture's tables as a run root, with a raw author name planted where curation never writes one
    (meta and the text), and another person's post in each comment's context."""
    root = RunRoot(path)
    for platform in PLATFORMS:
        t = tables(platform)
        rows = t["events"].to_pylist()
        for r in rows:
            meta = json.loads(r[S.META] or "{}")
            r[S.META] = json.dumps({**meta, "author": AUTHORS[r[S.USER_ID]]})
            r[S.TEXT] += f" Signed, {AUTHORS[r[S.USER_ID]]}."
        shard = f"{platform}/part-0000"
        root.write_parquet(RunLayout.events(shard), pa.Table.from_pylist(rows, schema=S.EVENT_SCHEMA))
        for name in ("tags", "user", "post"):
            root.write_parquet(RunLayout.annotations(name, shard), t[name])
        root.write_parquet(RunLayout.judgements(shard), t["judgements"])


@pytest.fixture(scope="module")
def people(tmp_path_factory) -> People:
    path = str(tmp_path_factory.mktemp("simulate") / "run")
    _write_run_root(path)
    return People.load(parse_config({"run_root": path, "salt": "t",
                                     "synthesis": {"platforms": list(PLATFORMS)}}))


def test_people_load_as_build_sft_does(people, bundles, tmp_path):
    assert len(people) == 10 and "r_ann" in people
    for user, b in bundles.items():
        loaded = people.get(user)
        assert loaded.platform == b.platform and [p.event_id for p in loaded.posts] == [p.event_id for p in b.posts]
        assert (loaded.persona, loaded.profile, loaded.writing_style) == (b.persona, b.profile, b.writing_style)
        assert loaded.posts[0].annotations.keys() == b.posts[0].annotations.keys()
    assert people.get("r_ann").posts[0].annotations["sqa_reason"] == SQA
    with pytest.raises(UnknownPerson) as err:
        people.get("nobody")
    assert isinstance(err.value, KeyError) and "'nobody'" in str(err.value)
    with pytest.raises(UnknownPerson, match="nobody"):
        people.summary("nobody")
    with pytest.raises(UnknownPerson, match="nobody"):
        people.build(_req("nobody", "next_post", platform="reddit"))
    assert people.build(_req("r_ann", "next_post")).messages[1]["content"]
    with pytest.raises(FileNotFoundError, match="no curated events"):
        People.load(parse_config({"run_root": str(tmp_path / "empty"), "salt": "t"}))


def test_people_list_and_summary_expose_nothing_identifying(people):
    everyone = people.list(limit=1000)
    assert [p["user_id"] for p in everyone] == sorted(AUTHORS)
    assert {p["platform"] for p in people.list("amazon")} == {"amazon"} and len(people.list("amazon")) == 4
    assert [p["user_id"] for p in people.list(limit=3)] == sorted(AUTHORS)[:3]
    assert len(people.list("reddit", limit=2)) == 2 and people.list("twitter") == [] and people.list(limit=0) == []
    with pytest.raises(ValueError, match="limit"):
        people.list(limit=-1)
    ann = next(p for p in everyone if p["user_id"] == "r_ann")
    assert ann["events_by_kind"] == {"comment": 3, "submission": 5} and ann["n_events"] == 8
    assert datetime.fromisoformat(ann["first_ts"]) < datetime.fromisoformat(ann["last_ts"])
    assert ann["first_ts"].startswith("2021-01-01T00:00:00")
    assert ann["tasks"] == ["next_post", "comment", "think", "explain"]
    assert next(p for p in everyone if p["user_id"] == "a_gus")["tasks"] == ["next_post", "rate", "choose"]
    summary = people.summary("r_ann")
    assert summary["annotations"] == {"persona": True, "profile": True, "writing_style": True, "stories": True}
    assert summary["span_days"] == 7.0 and summary["tasks"] == ann["tasks"] and summary["n_events"] == 8
    dumped = json.dumps([everyone, *(people.summary(u) for u in AUTHORS)])
    for name in AUTHORS.values():
        assert name not in dumped  # the raw author names planted in meta and text
    for secret in ("Entry ", "Question ", "What would you do", PERSONA, PROFILE[:40], STYLE, SQA["scenario"],
                   "reddit:r_ann:", "Item 0", "author", "Signed"):
        assert secret not in dumped  # no text of anyone, no event id, no item, no context field
    assert "RealAuthorRAnn" in people.get("r_ann").posts[0].text  # (the planted name is in the data)
