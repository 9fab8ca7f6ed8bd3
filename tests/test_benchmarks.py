"""Benchmark loaders on the real files in ../shared/data (counts from each SOURCE.md), their helpers and registry."""
from __future__ import annotations

import collections
import csv
import functools
import json
import re
from pathlib import Path

import pytest

from evaluation.benchmarks import BENCHMARKS, DEFAULT_FOLDERS, load_benchmark
from evaluation.benchmarks.common import (
    letter_index,
    shuffle_choices,
    split_lettered,
    strip_letter,
    text_index,
)
from evaluation.items import LETTERS, MCQItem, items_table

data = pytest.mark.shared_data

TOMBENCH_TASKS = {"False Belief Task": 600, "Faux-pas Recognition Test": 560, "Strange Story Task": 407,
                  "Unexpected Outcome Test": 300, "Ambiguous Story Task": 200, "Scalar Implicature Test": 200,
                  "Hinting Task Test": 103, "Persuasion Story Task": 100, "Hidden Emotions": 80,
                  "Discrepant Emotions": 40, "Discrepant Intentions": 40, "Moral Emotions": 40,
                  "Percepts-Knowledge Links": 40, "Knowledge-Pretend Play Links": 30,
                  "Completion of Failed Actions": 20, "Discrepant Desires": 20, "Multiple Desires": 20,
                  "Emotion Regulation": 20, "Knowledge-Attention Links": 20, "Prediction of Actions": 20}
OPENTOM_GENRES = {"attitude": 596, "location_cg_fo": 1192, "location_cg_so": 1192, "location_fg_fo": 2384,
                  "location_fg_so": 1192, "multihop_fo": 3576, "multihop_so": 3576}
TOMI_TYPES = {"memory": 999, "reality": 999, "first_order_0_no_tom": 999, "first_order_1_no_tom": 595,
              "first_order_1_tom": 404, "second_order_0_no_tom": 724, "second_order_1_no_tom": 724,
              "second_order_0_tom": 275, "second_order_1_tom": 275}
BIGTOM_SUBSETS = [f"{v}/{c}/{i}" for v in ("forward_belief", "forward_action", "backward_belief")
                  for c in ("true_belief", "false_belief") for i in ("no_initial_belief", "initial_belief")]
# (subset, lang) -> count, per benchmark
EXPECTED = {
    "socialiqa": {("dev", "en"): 1954},
    "motivebench": {(f"{s}/{t}", "en"): n for s, n in (("amazon", 50), ("blog", 50), ("persona", 100))
                    for t in ("motivation", "behavior", "motivation_behavior")},
    "tombench": {(task, lang): n for task, n in TOMBENCH_TASKS.items() for lang in ("en", "zh")},
    "emobench": {(s, lang): 200 for s in ("EA", "EU-emotion", "EU-cause") for lang in ("en", "zh")},
    "hitom": {(f"{style}/order{k}", "en"): 120 for style in ("VP", "CoTP") for k in range(5)},
    "opentom": {(genre, "en"): n for genre, n in OPENTOM_GENRES.items()},
    "bigtom": {(s, "en"): 200 for s in BIGTOM_SUBSETS},
    "tomi": {(t, "en"): n for t, n in TOMI_TYPES.items()},
}
TOTALS = {"socialiqa": 1954, "motivebench": 600, "tombench": 5720, "emobench": 1200, "hitom": 1200,
          "opentom": 13708, "bigtom": 2400, "tomi": 5994}
every_benchmark = pytest.mark.parametrize("name", list(EXPECTED))
LETTER_LABEL = re.compile(r"^\s*[A-Ta-t]\s*[.．、):：]")


@functools.cache
def _items(name: str, data_dir: Path) -> list[MCQItem]:
    return load_benchmark(name, data_dir)


def by_id(name: str, data_dir: Path) -> dict[str, MCQItem]:
    return {i.item_id: i for i in _items(name, data_dir)}


def test_registry_names():
    assert list(BENCHMARKS) == ["motivebench", "tombench", "socialiqa", "emobench", "hitom", "opentom", "bigtom",
                                "tomi"]
    assert DEFAULT_FOLDERS == {name: f"bench_{name}" for name in BENCHMARKS}


@data
@every_benchmark
def test_counts_and_well_formed_items(shared_data, name):
    items = _items(name, shared_data)
    assert len(items) == TOTALS[name] == sum(EXPECTED[name].values())
    assert collections.Counter((i.subset, i.lang) for i in items) == EXPECTED[name]
    assert len({i.item_id for i in items}) == len(items)
    assert all(i.item_id.startswith(f"{name}/") and i.benchmark == name for i in items)
    for i in items:
        assert i.lang in ("en", "zh") and isinstance(i.context, str) and i.question.strip()
        assert 0 <= i.answer < len(i.choices)
        for c in i.choices:
            assert isinstance(c, str) and c.strip() == c and c and not LETTER_LABEL.match(c), (i.item_id, c)
    assert items_table(items).num_rows == len(items)


@data
def test_duplicate_choices_are_the_datas_own(shared_data):
    """Only these items repeat a choice, and they do so in the raw files too (kept as the data has them)."""
    dups = {i.item_id for name in EXPECTED for i in _items(name, shared_data) if len(set(i.choices)) < len(i.choices)}
    assert dups == {"tombench/Unexpected Outcome Test/166/en", "tombench/Unexpected Outcome Test/168/en",
                    *(f"socialiqa/dev/{n}" for n in (103, 429, 670, 878, 1259))}


@data
@pytest.mark.parametrize("name", ["bigtom", "tomi", "opentom"])
def test_built_choice_sets_are_shuffled_stably(shared_data, name):
    items = _items(name, shared_data)
    first = sum(i.answer == 0 for i in items) / len(items)
    assert 0.3 < first < 0.7  # the correct answer is not always first
    assert load_benchmark(name, shared_data) == items  # same order on every load


@data
def test_hitom_fits_mcq_item(shared_data):
    items = _items("hitom", shared_data)
    assert {len(i.choices) for i in items} == {15} and len(LETTERS) >= 15


@data
def test_socialiqa_first_line_and_labels(shared_data):
    folder = shared_data / "bench_socialiqa"
    raw = json.loads((folder / "dev.jsonl").read_text(encoding="utf-8").splitlines()[0])
    label = int((folder / "dev-labels.lst").read_text().split()[0])
    assert by_id("socialiqa", shared_data)["socialiqa/dev/1"] == MCQItem(
        item_id="socialiqa/dev/1", benchmark="socialiqa", subset="dev", lang="en", context=raw["context"],
        question=raw["question"], choices=(raw["answerA"], raw["answerB"], raw["answerC"]), answer=label - 1)
    assert label == 3 and raw["answerC"] == "Find somewhere to go"
    counts = collections.Counter(i.answer for i in _items("socialiqa", shared_data))
    assert counts == {0: 643, 1: 654, 2: 657}


@data
def test_tombench_items_against_raw(shared_data):
    folder = shared_data / "bench_tombench"
    raw = json.loads((folder / "False Belief Task.jsonl").read_text(encoding="utf-8").splitlines()[0])
    items = by_id("tombench", shared_data)
    en, zh = items["tombench/False Belief Task/1/en"], items["tombench/False Belief Task/1/zh"]
    assert (en.context, en.question, en.choices, en.answer) == (
        raw["STORY"], raw["QUESTION"], tuple(raw[f"OPTION-{x}"] for x in "ABCD"), 0)
    assert en.choices == ("Backpack", "Handbag", "Tote bag", "Briefcase")
    assert (zh.context, zh.question, zh.choices, zh.answer) == (
        raw["故事"], raw["问题"], ("背包", "手提袋", "手提包", "公文包"), 0)
    # Option labels stripped in both languages; two-way tasks keep two choices.
    faux = items["tombench/Faux-pas Recognition Test/1/zh"]
    assert faux.choices == ("故事中有人说了不合适的话", "故事中没有人说不合适的话。")
    assert items["tombench/Strange Story Task/11/en"].choices == ("Yes", "No")
    assert items["tombench/Strange Story Task/74/zh"].choices[3].startswith("他高兴")  # raw "D.. 他高兴..."
    assert items["tombench/Knowledge-Attention Links/11/en"].answer == 0  # raw answer "A. "
    # Line 293: two-way zh question, four-way en question of line 292 (data quirk, kept).
    assert len(items["tombench/Strange Story Task/293/en"].choices) == 4
    assert len(items["tombench/Strange Story Task/293/zh"].choices) == 2
    assert collections.Counter(len(i.choices) for i in items.values()) == {4: 4753, 2: 967}


@data
def test_motivebench_item_against_raw(shared_data):
    raw = json.loads((shared_data / "bench_motivebench" / "Amazon_questions.json").read_text(encoding="utf-8"))[0]
    item = by_id("motivebench", shared_data)["motivebench/amazon/motivation/0"]
    assert item.subset == "amazon/motivation" and item.context == ""
    assert item.question == raw["Motivation Reasoning Question"]
    assert item.choices == tuple(o[3:] for o in raw["Options 1"])
    assert item.choices[item.answer] == "To address her dog’s current discomfort"  # "Correct Answer 1": "E"


@data
def test_emobench_items(shared_data):
    items = by_id("emobench", shared_data)
    ea = items["emobench/EA/1/en"]
    assert ea.question == "In this scenario, what is the most effective Action for Sarah?"
    assert ea.context.startswith("Sarah found out that her younger brother is being bullied")
    assert ea.choices[ea.answer] == "Suggest her brother to talk to a teacher or a school counselor" and ea.answer == 3
    assert items["emobench/EA/1/zh"].question == "在这个场景中，萨拉最有效的Action是什么？"
    emotion, cause = items["emobench/EU-emotion/1/en"], items["emobench/EU-cause/1/en"]
    assert emotion.context == cause.context and emotion.choices[emotion.answer] == "Delight"
    assert emotion.question == "What emotion(s) would Dorea ultimately feel in this situation?"
    assert cause.choices[cause.answer] == "Her daughter enjoyed the Baklava despite it being ruined"


@data
def test_hitom_items(shared_data):
    items = by_id("hitom", shared_data)
    cot = items["hitom/CoTP/order0/0"]
    assert cot.question == "Where is the lettuce really?" and cot.context.startswith("1 Avery, Charlotte, Isabella")
    assert len(cot.choices) == 15 and cot.choices[:2] == ("blue_drawer", "green_crate")
    assert cot.choices[cot.answer] == "green_drawer"
    vp = items["hitom/VP/order0/300"]
    instruction = ("Read the following story and answer the multiple-choice question. "
                   "Please provide answer without explanations.\n")
    assert vp.context == instruction + cot.context and vp.choices == cot.choices
    # Quirk kept: the VP copy of a CoTP question (sample_id + 300) has another answer in 138 of 600 pairs.
    cotp = [i for i in items.values() if i.subset.startswith("CoTP")]
    twins = [(i, items[f"hitom/VP/{i.subset.split('/')[1]}/{int(i.item_id.rsplit('/', 1)[1]) + 300}"]) for i in cotp]
    assert all(v.context.endswith(c.context.rstrip("*").strip()) and v.question == c.question for c, v in twins)
    assert sum(c.answer != v.answer for c, v in twins) == 138


@data
def test_opentom_items(shared_data):
    items = by_id("opentom", shared_data)
    meta = json.loads((shared_data / "bench_opentom" / "meta_data.json").read_text(encoding="utf-8"))
    att = items["opentom/attitude/75682867/0"]
    assert att.context == meta["75682867"]["narrative"]
    assert att.question == ("As Amir, what is your attitude towards Diego's action of moving scarf from basket "
                            "to a donation bin?")
    assert sorted(att.choices) == ["negative", "neutral", "positive"] and att.choices[att.answer] == "negative"
    end, start = items["opentom/location_fg_fo/75682867/0"], items["opentom/location_fg_fo/75682867/1"]
    assert set(end.choices) == {"basket", "a donation bin"} and end.choices[end.answer] == "a donation bin"
    assert start.choices[start.answer] == "basket"
    assert set(items["opentom/location_cg_fo/75682867/0"].choices) == {"Yes", "No"}
    assert set(items["opentom/multihop_fo/75682867/0"].choices) == {"more full", "equally full", "less full"}
    # Answers that name a place only approximately ("new hiding spot", "center of dining table").
    spot = items["opentom/location_fg_fo/71306900/0"]
    assert spot.choices[spot.answer] == "a new hiding spot"
    table = items["opentom/location_fg_fo/71136438/0"]
    assert table.choices[table.answer] == "center of dinint table"


@data
def test_bigtom_composition_follows_generate_conditions(shared_data):
    with (shared_data / "bench_bigtom" / "bigtom.csv").open(encoding="utf-8", newline="") as f:
        row = next(csv.reader(f, delimiter=";"))
    p = row[0].split(".")
    # The authors' expressions (code/src/generate_conditions.py), written out.
    no_init = p[0] + "." + p[1] + "." + p[2] + "." + p[4] + "."
    init = p[0] + "." + p[1] + "." + p[2] + "." + p[3] + "." + p[4] + "."
    items = by_id("bigtom", shared_data)
    expected = {  # subset -> (context, question, correct, wrong)
        "forward_belief/true_belief/no_initial_belief": (f"{no_init} {row[1]}", row[5], row[8], row[11]),
        "forward_belief/false_belief/initial_belief": (f"{init} {row[2]}", row[5], row[11], row[8]),
        "forward_action/true_belief/initial_belief": (f"{init} {row[1]}", row[7], row[10], row[13]),
        "forward_action/false_belief/no_initial_belief": (f"{no_init} {row[2]}", row[7], row[13], row[10]),
        "backward_belief/true_belief/initial_belief": (f"{init} {row[3]}", row[5], row[8], row[11]),
        "backward_belief/false_belief/no_initial_belief": (f"{no_init} {row[4]}", row[5], row[11], row[8]),
    }
    for subset, (context, question, correct, wrong) in expected.items():
        item = items[f"bigtom/{subset}/1"]
        assert (item.context, item.question, set(item.choices)) == (context, question, {correct, wrong})
        assert item.choices[item.answer] == correct
    assert items["bigtom/forward_belief/false_belief/initial_belief/1"].context == (
        "Noor is working as a barista at a busy coffee shop. Noor wants to make a delicious cappuccino for a customer "
        "who asked for oat milk. Noor grabs a milk pitcher and fills it with oat milk. Noor believes that the milk "
        "pitcher contains oatmilk. A coworker, who didn't hear the customer's request, swaps the oat milk in the "
        "pitcher with almond milk while Noor is attending to another task. Noor does not see her coworker swapping "
        "the milk.")


@data
def test_tomi_first_question(shared_data):
    item = by_id("tomi", shared_data)["tomi/test/1"]
    assert item.subset == "memory" and item.question == "Where was the grapefruit at the beginning?"
    assert item.context == ("Aria entered the front_yard.\nAiden entered the front_yard.\n"
                            "The grapefruit is in the green_bucket.\nAria moved the grapefruit to the blue_container.\n"
                            "Aiden exited the front_yard.\nNoah entered the playroom.")
    assert set(item.choices) == {"green_bucket", "blue_container"} and item.choices[item.answer] == "green_bucket"


def test_load_benchmark_errors(tmp_path):
    with pytest.raises(ValueError, match=r"unknown benchmark 'nope': choose one of motivebench, tombench"):
        load_benchmark("nope", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"folder .*bench_socialiqa does not exist.*holds bench_socialiqa/"):
        load_benchmark("socialiqa", tmp_path)
    (tmp_path / "bench_socialiqa").mkdir()
    with pytest.raises(FileNotFoundError, match=r"dev-labels.lst is missing; restore the raw files .* SOURCE.md"):
        load_benchmark("socialiqa", tmp_path)
    (tmp_path / "bench_tombench").mkdir()
    with pytest.raises(FileNotFoundError, match=r"bench_tombench/\*.jsonl is missing"):
        load_benchmark("tombench", tmp_path)


def test_unknown_answer_names_file_and_line(tmp_path):
    folder = tmp_path / "bench_emobench"
    folder.mkdir()
    row = {"qid": "7", "language": "en", "category": "c", "question type": "Action", "scenario": "s",
           "subject": "Ann", "choices": ["x", "y"], "label": "z"}
    (folder / "EA.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
    (folder / "EU.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match=r"EA.jsonl:1: answer 'z' is not exactly one of the choices"):
        load_benchmark("emobench", tmp_path)


def test_helpers():
    assert strip_letter("A. Yes", "A") == "Yes" and strip_letter("B.不是", "B") == "不是"
    assert strip_letter("D.. 他", "D") == "他" and strip_letter("A.I. robots", "A") == "A.I. robots"
    assert strip_letter("B. Yes", "A") == "B. Yes"
    assert split_lettered("A. red_box, B. green_bag, C. a_b") == ["red_box", "green_bag", "a_b"]
    with pytest.raises(ValueError, match="does not start with 'B. '"):
        split_lettered("A. x, C. y")
    assert [letter_index(a, 4, "f:1") for a in ("A", "b", "A. ", " D ")] == [0, 1, 0, 3]
    with pytest.raises(ValueError, match=r"f:2: answer 'E' is not a letter among the 4 choices"):
        letter_index("E", 4, "f:2")
    assert text_index(["x", " y "], "y", "f:3") == 1
    choices, answer = shuffle_choices(["a", "b", "c", "d"], 2, "some/id")
    assert choices[answer] == "c" and sorted(choices) == ["a", "b", "c", "d"]
    assert shuffle_choices(["a", "b", "c", "d"], 2, "some/id") == (choices, answer)
