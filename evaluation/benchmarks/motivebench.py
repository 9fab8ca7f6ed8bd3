"""MotiveBench (2025): 200 scenarios (Amazon 50, Blog 50, Persona 100) x 3 six-way questions = 600 items.

Subsets `<source>/motivation`, `<source>/behavior`, `<source>/motivation_behavior` (source amazon, blog,
persona). Each question text embeds its own scenario, so `context` is empty and `question` is the whole text;
options lose their "A. " labels and the answer letter becomes an index.
"""
from __future__ import annotations

from pathlib import Path

from evaluation.benchmarks.common import letter_index, read_json, strip_letter
from evaluation.items import LETTERS, MCQItem

NAME = "motivebench"
SOURCES = ("Amazon", "Blog", "Persona")
# (subset suffix, question key, option/answer number)
TASKS = (("motivation", "Motivation Reasoning Question", 1), ("behavior", "Behavior Reasoning Question", 2),
         ("motivation_behavior", "Motivation and Behavior Reasoning Question", 3))


def load(folder: Path) -> list[MCQItem]:
    items = []
    for source in SOURCES:
        path = folder / f"{source}_questions.json"
        for scenario in read_json(path):
            for task, question_key, n in TASKS:
                options = scenario[f"Options {n}"]
                where = f"{path.name} idx {scenario['idx']} question {n}"
                items.append(MCQItem(
                    item_id=f"{NAME}/{source.lower()}/{task}/{scenario['idx']}", benchmark=NAME,
                    subset=f"{source.lower()}/{task}", lang="en", context="", question=scenario[question_key],
                    choices=tuple(strip_letter(o, LETTERS[i]) for i, o in enumerate(options)),
                    answer=letter_index(scenario[f"Correct Answer {n}"], len(options), where)))
    return items
