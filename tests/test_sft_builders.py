"""SFT task builders on hand-made user bundles (no Ray): every task, exact messages, item selection
candidates, wordings, target lengths and the leakage index."""
from __future__ import annotations

import json
import random
import re

import pytest

from llm.models import load_tokenizer
from sft import wording
from sft.build import build_examples, item_names
from sft.bundle import Post, UserBundle, build_bundles
from sft.common import BuildContext, about, split_words
from sft.item_tasks import item_selection
from sft.leakage import NgramIndex, ngram_hashes
from sft.registry import TASK_NAMES, TASKS, build_user
from sft.settings import SFTConfig
from tests.sft_fixtures import ITEMS, PERSONA, PROFILE, SQA, tables


def _bundle(platform: str, user: str) -> tuple[UserBundle, BuildContext]:
    t = tables(platform)
    bundles = build_bundles(t["events"], t["tags"], t["user"], t["post"], t["judgements"])
    return next(b for b in bundles if b.user_id == user), BuildContext(SFTConfig(), item_names(t["events"]))


def _one(examples, task, subject=None):
    found = [e for e in examples if e.task == task and (subject is None or e.subject_id == subject)]
    assert found, f"no {task} example"
    return found[-1]


def test_bundle_holds_only_accepted_annotations():
    t = tables("reddit")
    judgements = t["judgements"].to_pylist()
    for j in judgements:  # the judge rejected r_ann's persona
        if j["annotation_kind"] == "persona" and j["user_id"] == "r_ann":
            j["accepted"] = False
    import pyarrow as pa

    from core import schema as S

    bundles = {b.user_id: b for b in build_bundles(t["events"], t["tags"], t["user"], t["post"],
                                                    pa.Table.from_pylist(judgements, schema=S.JUDGEMENT_SCHEMA))}
    assert bundles["r_ann"].persona is None and bundles["r_ann"].profile == PROFILE
    assert bundles["r_ben"].persona == PERSONA
    assert [p.ts for p in bundles["r_ann"].posts] == sorted(p.ts for p in bundles["r_ann"].posts)
    assert bundles["r_ann"].posts[0].annotations["sqa_general"] == SQA
    assert bundles["r_ann"].writing_style  # unjudged kinds count when valid


def test_every_task_of_the_paper_is_built_from_full_bundles():
    tok = load_tokenizer("smollm2")
    built = set()
    for platform in ("reddit", "blogger", "amazon"):
        t = tables(platform)
        result = build_examples(t["events"], t["tags"], t["user"], t["post"], t["judgements"], SFTConfig(), tok,
                                None, item_names(t["events"]))
        built |= set(result.examples["task"].to_pylist())
        for row in result.examples.to_pylist():
            roles = [m["role"] for m in row["messages"]]
            assert roles == ["user", "assistant"] and all(m["content"].strip() for m in row["messages"])
            assert row["platform"] in next(task.platforms for task in TASKS if task.name == row["task"])
    assert built == set(TASK_NAMES)
    assert len(TASK_NAMES) == 23


def test_persona2profile_exact_messages():
    b, ctx = _bundle("reddit", "r_ann")
    ex = _one(build_user(b, ctx), "persona2profile")
    assert ex.messages == [
        {"role": "user", "content": "Based on the brief persona below, describe the person in depth. Use the third "
                                    "person and a single flowing paragraph of about 50 words.\n\nPersona: " + PERSONA},
        {"role": "assistant", "content": PROFILE}]
    assert ex.subject_id == "r_ann" and ex.subject_ts is None


def test_social_qa_exact_messages_with_persona_or_profile():
    b, ctx = _bundle("reddit", "r_ann")
    ex = _one(build_user(b, ctx), "sqa_reason")
    assert ex.messages == [
        {"role": "user", "content": "Here is what we know about the main character (persona):\n" + PERSONA +
                                    "\n\nSituation:\n" + SQA["scenario"] + "\n\n" + SQA["question"] +
                                    "\nReply in the third person with about 10 words."},
        {"role": "assistant", "content": SQA["answer"]}]
    # Over many examples both the persona and the profile are drawn.
    labels = set()
    for user in ("r_ann", "r_ben", "r_cat"):
        b, ctx = _bundle("reddit", user)
        for ex in build_user(b, ctx):
            if ex.task.startswith("sqa_"):
                labels.add("persona" if PERSONA in ex.messages[0]["content"] else "profile")
    assert labels == {"persona", "profile"}


def test_stories_split_in_range_and_target_is_the_rest():
    for user in ("r_ann", "r_ben", "r_cat", "b_dan"):
        b, ctx = _bundle("reddit" if user.startswith("r") else "blogger", user)
        examples = build_user(b, ctx)
        h2h = _one(examples, "half2half_stories")
        past = json.loads(re.search(r"\n(\[.*\])\n", h2h.messages[0]["content"]).group(1))
        future = json.loads(h2h.target)
        assert 2 <= len(past) <= len(b.stories) - 1
        assert past + future == b.stories
        theme = _one(examples, "half_theme_persona2target_story")
        assert theme.target in {s["content"] for s in b.stories[2:]}


def test_writing_imitation_exact_messages_and_prefix_split():
    b, ctx = _bundle("reddit", "r_ann")
    ex = _one(build_user(b, ctx), "writing_imitation_type2", "reddit:r_ann:4")
    prompt = ex.messages[0]["content"]
    assert prompt.startswith("Past posts by one author:\n[1] (2021-01-04) Title 0-3\n\nEntry 3. We adopted a shy ")
    assert "Finish this new post by the same author (about 20 more words):\nTitle 0-4\n\nEntry 4. " in prompt
    prefix = prompt.split("more words):\n", 1)[1]
    post = b.posts[4]
    assert f"{prefix} {ex.target}" == f"{post.title}\n\n{post.text}"
    assert ex.target == ("I spent three weeks rewriting my resume and calling old colleagues. The marathon "
                         "training is brutal, but running at dawn clears my head before work.")
    body_words = len(f"{post.title} {post.text}".split())
    assert 0.3 * body_words - 1 <= len(prefix.split()) <= 0.7 * body_words + 1


def test_writing_history_is_earlier_posts_only_and_cut_to_300_words():
    cfg = SFTConfig(history_words=12)
    b, _ = _bundle("blogger", "b_eve")
    ctx = BuildContext(cfg)
    for ex in build_user(b, ctx):
        if ex.task in ("writing_imitation_type1", "writing_imitation_type2"):
            target_ts = next(p.ts for p in b.posts if p.event_id == ex.subject_id)
            shown = re.findall(r"\[\d\] \((\d{4}-\d\d-\d\d)\)", ex.messages[0]["content"])
            assert 1 <= len(shown) <= 5 and all(d < target_ts.strftime("%Y-%m-%d") for d in shown)
            for block in re.split(r"\n\n(?=\[\d\])", ex.messages[0]["content"].split(":\n", 1)[1]):
                if block.startswith("["):
                    assert block.split("\n\n")[0].rstrip().endswith("...")  # 80-word posts cut to 12 words


def test_review_imitation_names_the_item_and_style_types_need_a_style():
    b, ctx = _bundle("amazon", "a_gus")
    examples = build_user(b, ctx)
    ex = _one(examples, "review_imitation_type3", "amazon:a_gus:8")
    assert ex.messages[0]["content"] == ('Review style of a shopper:\nWrites short, warm, plain sentences with a dry '
                                         'sense of humour.\n\nReview the item "Item 08 kettle" in exactly that style '
                                         '(gist: A post about entry 8.), about 50 words.')
    assert ex.target == b.posts[-1].text
    b.writing_style = None
    ctx2 = BuildContext(SFTConfig())
    assert not [e for e in build_user(b, ctx2) if e.task in ("review_imitation_type3", "review_imitation_type4")]
    assert ctx2.skipped[("review_imitation_type3", "needs an accepted writing style")] == 1


def test_personalized_comment_shows_earlier_comments_and_the_parent_post():
    b, ctx = _bundle("reddit", "r_ann")
    ex = _one(build_user(b, ctx), "personalized_comment", "reddit:r_ann:7")
    prompt = ex.messages[0]["content"]
    assert prompt.startswith("Profile: " + PROFILE + "\n\nTheir earlier comments:\n[1] (2021-01-06) Entry 5.")
    assert prompt.endswith("Write their comment (about 50 words).\n\nPost:\nQuestion 0-7\n\nWhat would you do?")
    assert ex.target == b.posts[-1].text
    assert all(e.subject_id != "reddit:r_ann:5" for e in build_user(b, BuildContext(SFTConfig()))
               if e.task == "personalized_comment")  # the first comment has no earlier one


def test_item_selection_exact_messages():
    b, ctx = _bundle("amazon", "a_gus")
    ex = _one(build_user(b, ctx), "item_selection")
    lines = ex.messages[0]["content"].split("\n")
    assert lines[0] == "Purchase history of the customer (oldest first):"
    assert lines[1:9] == [f"- {ITEMS[f'B{i:03d}']}" for i in range(8)]
    assert lines[10] == "Candidate items suggested by Amazon:"
    assert lines[-1] == "Name the one item this customer chooses."
    assert ex.target == "Item 08 kettle" and ex.subject_id == "amazon:a_gus:8"


def test_item_selection_candidates_over_many_users():
    """20 distinct candidates, exactly one bought (the true next item), never another purchase; the
    input mix follows 50/15/35 history/persona/both."""
    pool = {f"I{i:03d}": f"Product {i}" for i in range(120)}
    rng = random.Random(7)
    modes = {"history": 0, "persona": 0, "both": 0}
    for u in range(400):
        bought = rng.sample(sorted(pool), rng.randint(2, 12))
        posts = [Post(f"amazon:u{u}:{i}", "review", None, "fine product", meta={"item_id": item},
                      context={"item_title": pool[item]}) for i, item in enumerate(bought)]
        b = UserBundle(f"u{u}", "amazon", posts, persona=PERSONA)
        ctx = BuildContext(SFTConfig(untagged_posts="include"), pool)
        (ex,) = list(item_selection(b, ctx))
        prompt = ex.messages[0]["content"]
        cands = re.findall(r"^\d+\. (.+)$", prompt, flags=re.M)
        names = {pool[i] for i in bought}
        assert len(cands) == 20 and len(set(cands)) == 20
        assert [c for c in cands if c in names] == [ex.target] == [pool[bought[-1]]]
        has_history, has_persona = "oldest first" in prompt, PERSONA in prompt
        modes["both" if has_history and has_persona else "persona" if has_persona else "history"] += 1
        if has_history:
            shown = re.findall(r"^- (.+)$", prompt, flags=re.M)
            assert shown == [pool[i] for i in bought[:-1]][-30:]
    assert 0.42 < modes["history"] / 400 < 0.58 and 0.09 < modes["persona"] / 400 < 0.21


def test_item_selection_target_is_the_last_qualified_item_from_index_7():
    pool = {f"I{i:03d}": f"Product {i}" for i in range(60)}
    posts = [Post(f"e{i}", "review", None, "ok", meta={"item_id": f"I{i:03d}"}, quality="high", harmless=True)
             for i in range(10)]
    posts[9].quality = "low"  # the last review is not qualified: the last qualified one (index 8) is the target
    b = UserBundle("u", "amazon", posts)
    (ex,) = list(item_selection(b, BuildContext(SFTConfig(), pool)))
    assert ex.subject_id == "e8" and ex.target == "product I008"  # no metadata title: named by its id
    posts[8].quality = posts[7].quality = "low"
    posts[6].quality = "high"  # the last qualified review is at index 6 < 7: the final item instead
    (ex,) = list(item_selection(b, BuildContext(SFTConfig(), pool)))
    assert ex.subject_id == "e9"


def test_untagged_posts_are_excluded_unless_included():
    posts = [Post(f"e{i}", "blog_post", None, "word " * 80) for i in range(4)]
    b = UserBundle("u", "blogger", posts)
    assert not build_user(b, BuildContext(SFTConfig()))
    built = build_user(b, BuildContext(SFTConfig(untagged_posts="include")))
    assert {e.task for e in built} == {"writing_imitation_type2"}
    posts[3].quality, posts[3].harmless = "low", True  # a tag that rejects a post still excludes it
    assert "e3" not in {e.subject_id for e in build_user(b, BuildContext(SFTConfig(untagged_posts="include")))}


def test_wordings_have_paraphrases_and_fill_every_placeholder():
    all_wordings = wording.wordings()
    for task in TASK_NAMES:
        key = "social_qa" if task.startswith("sqa_") else task
        assert len(all_wordings[key]) >= 3, key
    picks = {wording.pick("persona2profile", f"id{i}") for i in range(60)}
    assert len(picks) == 3 and wording.pick("persona2profile", "x") == wording.pick("persona2profile", "x")
    with pytest.raises(wording.WordingError, match="needs \\['persona', 'words'\\]"):
        wording.render("persona2profile", "x")


def test_target_length_is_rounded_to_ten_words():
    assert about("one two three") == 10 and about("w " * 44) == 40 and about("w " * 45) == 40
    assert about("w " * 46) == 50 and about("w " * 300) == 300
    assert split_words("only", 0.5) is None
    head, tail = split_words("a  b\nc d e f g h i j", 0.3)
    assert (head, tail) == ("a  b\nc", "d e f g h i j")


def test_ngram_index_catches_a_planted_item(tmp_path):
    story = ("Sally put the marble in her basket and left the room while Anne moved it to the box "
             "because she wanted to play a trick on her friend")
    (tmp_path / "bench.jsonl").write_text(json.dumps({"story": story, "question": "Where?"}) + "\n")
    index = NgramIndex.build([str(tmp_path)], 13)
    assert index.files == [str(tmp_path / "bench.jsonl")] and len(index.hashes) == len(story.split()) - 12
    (tmp_path / "other.json").write_text(json.dumps([{"text": "An unrelated item about a cat who sat on the mat all day long in the sun"}]))
    index = NgramIndex.build([str(tmp_path / "*.json*")], 13)
    planted = "Yesterday, " + story.upper() + "! Then we left."
    assert index.matches(planted) == (len(story.split()) - 12, str(tmp_path / "bench.jsonl"))
    assert index.matches("Sally put the marble in her basket and left the room.") == (0, None)
    again = NgramIndex.from_bytes(index.to_bytes())
    assert again.hashes.tolist() == index.hashes.tolist() and again.matches(planted) == index.matches(planted)
    assert len(ngram_hashes("too short", 13)) == 0


def test_person_ablation_keeps_the_examples_and_drops_only_the_person_part():
    """sft.person_context false: the same behaviour-prediction examples and targets, without the persona,
    profile, past posts or style in the prompt (the person ablation of evaluation/ablation.py)."""
    behaviour = ("sqa_", "writing_imitation", "review_imitation", "personalized_comment", "item_selection")
    tok = load_tokenizer("smollm2")
    for platform in ("reddit", "blogger", "amazon"):
        t = tables(platform)
        args = (t["events"], t["tags"], t["user"], t["post"], t["judgements"])
        with_p = build_examples(*args, SFTConfig(), tok, None, item_names(t["events"])).examples.to_pylist()
        without = build_examples(*args, SFTConfig(person_context=False), tok, None,
                                 item_names(t["events"])).examples.to_pylist()
        assert [r["example_id"] for r in with_p] == [r["example_id"] for r in without]
        changed = 0
        for a, b in zip(with_p, without):
            assert a["messages"][1] == b["messages"][1]  # the same target
            prompt = b["messages"][0]["content"]
            if a["task"].startswith(behaviour):
                assert PERSONA not in prompt and PROFILE not in prompt
                assert prompt.count("Entry ") <= 1  # the post's own beginning at most, no earlier posts
                assert len(prompt) < len(a["messages"][0]["content"])
                changed += 1
            else:
                assert a["messages"] == b["messages"]
        assert changed > 0
