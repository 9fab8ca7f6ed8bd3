"""Hi-ToM (He et al., Findings of EMNLP 2023): all 1,200 rows = 600 questions x 2 prompt styles, 15 choices each.

Subset `<style>/order<k>` (style VP or CoTP, ToM order 0-4); item id `hitom/<style>/order<k>/<sample_id>`.
`context` is the row's `story` as the data has it (outer blanks stripped): VP stories open with the instruction
"Read the following story and answer the multiple-choice question. Please provide answer without explanations.";
CoTP stories carry no instruction (six end in "***"). Choices come from the "A. x, B. y, ..." string; the answer text is
mapped to its index. Quirk kept as the data has it: VP row `sample_id` s+300 repeats CoTP row s, but 138 of the
600 pairs (orders 2-4) give different answers; replaying the one-chapter stories without deception, the CoTP
answers are the consistent ones (all 100 of orders 0-4) and 21 of the 60 VP answers of orders 2-4 are not.
"""
from __future__ import annotations

from pathlib import Path

from evaluation.benchmarks.common import read_json, split_lettered, text_index
from evaluation.items import MCQItem

NAME = "hitom"
FILE = "Hi-ToM_data.json"


def load(folder: Path) -> list[MCQItem]:
    items = []
    for row in read_json(folder / FILE)["data"]:
        subset = f"{row['prompting_type']}/order{row['question_order']}"
        item_id = f"{NAME}/{subset}/{row['sample_id']}"
        choices = split_lettered(row["choices"])
        items.append(MCQItem(item_id=item_id, benchmark=NAME, subset=subset, lang="en", context=row["story"].strip(),
                             question=row["question"], choices=tuple(choices),
                             answer=text_index(choices, row["answer"], f"{FILE} {item_id}")))
    return items
