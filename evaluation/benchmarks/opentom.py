"""OpenToM (Xu et al., ACL 2024): the 13,708 normal-length questions of the 7 per-genre files.

Subset = the genre (file name without `.json` and the `_new` suffix): attitude, location_cg_fo, location_cg_so,
location_fg_fo, location_fg_so, multihop_fo, multihop_so. Item id `opentom/<genre>/<story id>/<position>`;
`context` is `meta_data.json[story id]["narrative"]`. Answers are free strings, so each genre gets a choice set:
* attitude: positive / neutral / negative.
* location_cg_*: Yes / No.
* multihop_*: more / equally / less full when the question asks about fullness, more / equally / less accessible
  when it asks about accessibility.
* location_fg_*: the story's two candidate places, `plot_info` original_place and move_to_place. The answer is
  matched ignoring case and a leading article; failing that, to a candidate at least 90 % similar (difflib):
  story 71136438 spells the place "center of dinint table" in plot_info, "center of dining table" in one answer.
Every choice set is shuffled with a seed from the item id. An answer outside its set raises ValueError.
"""
from __future__ import annotations

import difflib
import logging
import re
from pathlib import Path

from evaluation.benchmarks.common import read_json, shuffle_choices, text_index
from evaluation.items import MCQItem

log = logging.getLogger(__name__)

NAME = "opentom"
GENRE_FILES = {"attitude": "attitude.json", "location_cg_fo": "location_cg_fo.json",
               "location_cg_so": "location_cg_so.json", "location_fg_fo": "location_fg_fo_new.json",
               "location_fg_so": "location_fg_so_new.json", "multihop_fo": "multihop_fo.json",
               "multihop_so": "multihop_so.json"}
ATTITUDES = ("positive", "neutral", "negative")
YES_NO = ("Yes", "No")
FULLNESS = ("more full", "equally full", "less full")
ACCESSIBILITY = ("more accessible", "equally accessible", "less accessible")


def _norm(place: str) -> str:
    return re.sub(r"^(?:a|an|the)\s+", "", place.strip().lower())


def _place_index(places: tuple[str, str], answer: str, where: str) -> int:
    """Index of the candidate place the answer names (see the module docstring for the matching rule)."""
    normed = [_norm(p) for p in places]
    if _norm(answer) in normed:
        return normed.index(_norm(answer))
    close = difflib.get_close_matches(_norm(answer), normed, n=1, cutoff=0.9)
    if not close:
        raise ValueError(f"{where}: answer {answer!r} is none of the story's places {list(places)}")
    log.warning("%s: answer %r taken as the place %r (approximate match)", where, answer,
                places[normed.index(close[0])])
    return normed.index(close[0])


def _choice_set(genre: str, question: dict, plot_info: dict, where: str) -> tuple[tuple[str, ...], int]:
    """(choices in a fixed order, index of the answer) for one question."""
    if genre.startswith("location_fg"):
        places = (plot_info["original_place"], plot_info["move_to_place"])
        return places, _place_index(places, question["answer"], where)
    if genre == "attitude":
        choices = ATTITUDES
    elif genre.startswith("location_cg"):
        choices = YES_NO
    elif "fullness" in question["question"]:
        choices = FULLNESS
    elif "accessib" in question["question"]:
        choices = ACCESSIBILITY
    else:
        raise ValueError(f"{where}: no choice set for the question {question['question']!r}")
    return choices, text_index(choices, question["answer"], where)


def load(folder: Path) -> list[MCQItem]:
    meta = read_json(folder / "meta_data.json")
    items = []
    for genre, file in GENRE_FILES.items():
        for story_id, questions in read_json(folder / file).items():
            if story_id not in meta:
                raise ValueError(f"{file}: story {story_id} is not in meta_data.json")
            for position, question in enumerate(questions):
                item_id = f"{NAME}/{genre}/{story_id}/{position}"
                choices, answer = _choice_set(genre, question, meta[story_id]["plot_info"], f"{file} {item_id}")
                choices, answer = shuffle_choices(choices, answer, item_id)
                items.append(MCQItem(item_id=item_id, benchmark=NAME, subset=genre, lang="en",
                                     context=meta[story_id]["narrative"], question=question["question"],
                                     choices=choices, answer=answer))
    return items
