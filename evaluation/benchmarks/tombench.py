"""ToMBench (Chen et al., ACL 2024): 2,860 questions in 20 task files, each line yielding an `en` and a `zh` item.

Subset = the task (file name without `.jsonl`); item id `tombench/<task>/<line>/<lang>`. English comes from
STORY / QUESTION / OPTION-A..D, Chinese from 故事 / 问题 / 选项A..D. Two-way tasks leave options C and D empty
(NaN): those are dropped. Option labels ("A. ", "A.") are stripped; the answer letter is normalised (one line
of Knowledge-Attention Links has "A. "). Quirk kept as the data has it: Strange Story Task line 293 pairs a
two-way Chinese question with the four-way English question of line 292; a warning names such lines.
"""
from __future__ import annotations

import errno
import logging
from pathlib import Path

from evaluation.benchmarks.common import letter_index, read_jsonl, strip_letter
from evaluation.items import LETTERS, MCQItem

log = logging.getLogger(__name__)

NAME = "tombench"
ANSWER = "答案\nANSWER"
# lang -> (story key, question key, option key for a letter)
FIELDS = {"en": ("STORY", "QUESTION", "OPTION-{}"), "zh": ("故事", "问题", "选项{}")}


def _choices(row: dict, option_key: str, where: str) -> tuple[str, ...]:
    """The non-empty options A, B, ... (they must form a prefix: no gap before a later option)."""
    values = [row.get(option_key.format(letter)) for letter in "ABCD"]
    present = [isinstance(v, str) and bool(v.strip()) for v in values]
    n = present.index(False) if False in present else len(values)
    if any(present[n:]):
        raise ValueError(f"{where}: options {values} leave a gap before a later option")
    return tuple(strip_letter(v, LETTERS[i]) for i, v in enumerate(values[:n]))


def load(folder: Path) -> list[MCQItem]:
    paths = sorted(folder.glob("*.jsonl"))
    if not paths:
        raise FileNotFoundError(errno.ENOENT, "no ToMBench task files", str(folder / "*.jsonl"))
    items = []
    for path in paths:
        task = path.stem
        for line_no, row in read_jsonl(path):
            by_lang = {}
            for lang, (story_key, question_key, option_key) in FIELDS.items():
                where = f"{path.name}:{line_no} ({lang})"
                choices = _choices(row, option_key, where)
                by_lang[lang] = MCQItem(
                    item_id=f"{NAME}/{task}/{line_no}/{lang}", benchmark=NAME, subset=task, lang=lang,
                    context=row[story_key], question=row[question_key], choices=choices,
                    answer=letter_index(row[ANSWER], len(choices), where))
            if len(by_lang["en"].choices) != len(by_lang["zh"].choices):
                log.warning("%s:%d: en has %d options, zh %d (kept as the data has them)", path.name, line_no,
                            len(by_lang["en"].choices), len(by_lang["zh"].choices))
            items.extend(by_lang.values())
    return items
