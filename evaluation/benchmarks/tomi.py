"""ToMi (Le, Boureau, Nickel, EMNLP 2019): the 5,994 questions of `fb_all_test.txt` in the zip, read in place.

Subset = the question type from the matching `.trace` line (second-to-last field: memory, reality,
first_order_0_no_tom, ..., second_order_1_tom); item id `tomi/test/<question number>`. `context` is the story
lines without their bAbI numbers. Choices: the distinct containers the story puts the questioned object in
("The <object> is in the <c>." and "<agent> moved the <object> to the <c>."), in a seeded order from the item id;
every test question has exactly two. An answer outside them raises ValueError.
"""
from __future__ import annotations

import re
import zipfile
from pathlib import Path

from evaluation.benchmarks.common import shuffle_choices, text_index
from evaluation.items import MCQItem

NAME = "tomi"
ZIP = "tomi_balanced_story_types.zip"
MEMBER = "tomi_balanced_story_types/fb_all_test"
QUESTION_OBJECT = re.compile(r"the (\w+)(?: at the beginning| really)?\?$")


def _containers(story: list[str], obj: str) -> list[str]:
    places: list[str] = []
    for line in story:
        m = (re.fullmatch(rf"The {obj} is in the (\w+)\.", line)
             or re.fullmatch(rf"\w+ moved the {obj} to the (\w+)\.", line))
        if m and m.group(1) not in places:
            places.append(m.group(1))
    return places


def load(folder: Path) -> list[MCQItem]:
    with zipfile.ZipFile(folder / ZIP) as z:
        lines = z.read(f"{MEMBER}.txt").decode("utf-8").splitlines()
        traces = z.read(f"{MEMBER}.trace").decode("utf-8").splitlines()
    items: list[MCQItem] = []
    story: list[str] = []
    for line_no, line in enumerate(lines, 1):
        number, text = line.split(" ", 1)
        if number == "1":
            story = []
        if "\t" not in text:
            story.append(text)
            continue
        question, answer, _support = text.split("\t")
        where = f"{MEMBER}.txt:{line_no}"
        if len(items) >= len(traces):
            raise ValueError(f"{where}: more questions than the {len(traces)} lines of {MEMBER}.trace")
        obj = QUESTION_OBJECT.search(question)
        if obj is None:
            raise ValueError(f"{where}: no object in the question {question!r}")
        places = _containers(story, obj.group(1))
        item_id = f"{NAME}/test/{len(items) + 1}"
        choices, idx = shuffle_choices(places, text_index(places, answer, where), item_id)
        items.append(MCQItem(item_id=item_id, benchmark=NAME, subset=traces[len(items)].split(",")[-2], lang="en",
                             context="\n".join(story), question=question, choices=choices, answer=idx))
    if len(items) != len(traces):
        raise ValueError(f"{MEMBER}.txt has {len(items)} questions but {MEMBER}.trace {len(traces)} lines")
    return items
