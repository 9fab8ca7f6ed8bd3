"""BigToM (Gandhi et al., NeurIPS 2023 D&B): 200 templates x 12 evaluated conditions = 2,400 two-way items.

Composition follows the authors' `code/src/generate_conditions.py` (github.com/cicl-stanford/procedural-evals-tom,
commit 5ed88e37, the commit that last changed bigtom.csv). The story (setting. desire. action. initial belief.
causal event.) is split on "."; without the initial belief it is sentences 0, 1, 2, 4, with it 0-4, each followed
by ".". Then, per variable:
* forward_belief: story + " " + (Aware of event | Not Aware of event); Belief Question; Belief Answer (not) Aware.
* forward_action: the same story; Action Question; Action Answer (not) Aware.
* backward_belief: story + " " + (Action aware | Action not aware); Belief Question; Belief Answer (not) Aware.
`true_belief` uses the aware sentence and its answer is the aware answer; `false_belief` the not-aware ones. The
two answers are shuffled with a seed from the item id (the authors shuffle with random.seed(0) at evaluation).
Not built: the generator's control conditions (`true_control` / `false_control`, with a random event) and
`percept_to_belief`. Subset `<variable>/<condition>/<no_initial_belief|initial_belief>`; item id
`bigtom/<subset>/<csv line>`.
"""
from __future__ import annotations

import csv
from pathlib import Path

from evaluation.benchmarks.common import shuffle_choices
from evaluation.items import MCQItem

NAME = "bigtom"
FILE = "bigtom.csv"
FIELDS = ("Story", "Aware of event", "Not Aware of event", "Action aware", "Action not aware", "Belief Question",
          "Desire Question", "Action Question", "Belief Answer Aware", "Desire Answer Aware", "Action Answer Aware",
          "Belief Answer not Aware", "Desire Answer not Aware", "Action Answer not Aware", "Random Event",
          "Aware of random event", "Not aware of random event", "Method", "Flag")  # the authors name the first 17
# variable -> (question, (answer aware, answer not aware), (sentence aware, sentence not aware))
VARIABLES = {
    "forward_belief": ("Belief Question", ("Belief Answer Aware", "Belief Answer not Aware"),
                       ("Aware of event", "Not Aware of event")),
    "forward_action": ("Action Question", ("Action Answer Aware", "Action Answer not Aware"),
                       ("Aware of event", "Not Aware of event")),
    "backward_belief": ("Belief Question", ("Belief Answer Aware", "Belief Answer not Aware"),
                        ("Action aware", "Action not aware")),
}
CONDITIONS = ("true_belief", "false_belief")  # their index picks the aware (0) or not-aware (1) sentence and answer
INITIAL_BELIEF = {"no_initial_belief": (0, 1, 2, 4), "initial_belief": (0, 1, 2, 3, 4)}


def load(folder: Path) -> list[MCQItem]:
    with (folder / FILE).open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter=";"))
    items = []
    for line_no, row in enumerate(rows, 1):
        if len(row) != len(FIELDS):
            raise ValueError(f"{FILE}:{line_no}: {len(row)} fields, expected {len(FIELDS)}")
        t = dict(zip(FIELDS, row))
        parts = t["Story"].split(".")
        for initial, kept in INITIAL_BELIEF.items():
            story = "".join(parts[i] + "." for i in kept)
            for variable, (question, answers, sentences) in VARIABLES.items():
                for side, condition in enumerate(CONDITIONS):
                    subset = f"{variable}/{condition}/{initial}"
                    item_id = f"{NAME}/{subset}/{line_no}"
                    choices, answer = shuffle_choices([t[a] for a in answers], side, item_id)
                    items.append(MCQItem(item_id=item_id, benchmark=NAME, subset=subset, lang="en",
                                         context=f"{story} {t[sentences[side]]}", question=t[question],
                                         choices=choices, answer=answer))
    return items
