"""Social IQa (Sap et al., EMNLP 2019), dev split: 1,954 three-way questions, subset `dev`.

`dev.jsonl` gives context, question and answerA-C; `dev-labels.lst` gives the gold 1|2|3 on the same line.
"""
from __future__ import annotations

from pathlib import Path

from evaluation.benchmarks.common import read_jsonl
from evaluation.items import MCQItem

NAME = "socialiqa"


def load(folder: Path) -> list[MCQItem]:
    labels = (folder / "dev-labels.lst").read_text(encoding="utf-8").split()
    rows = list(read_jsonl(folder / "dev.jsonl"))
    if len(rows) != len(labels):
        raise ValueError(f"{folder}: dev.jsonl has {len(rows)} questions but dev-labels.lst {len(labels)} labels")
    items = []
    for (line_no, row), label in zip(rows, labels):
        if label not in ("1", "2", "3"):
            raise ValueError(f"dev-labels.lst:{line_no}: label {label!r} is not 1, 2 or 3")
        items.append(MCQItem(item_id=f"{NAME}/dev/{line_no}", benchmark=NAME, subset="dev", lang="en",
                             context=row["context"], question=row["question"],
                             choices=(row["answerA"], row["answerB"], row["answerC"]), answer=int(label) - 1))
    return items
