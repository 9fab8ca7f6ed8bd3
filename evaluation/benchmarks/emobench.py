"""EmoBench (Sabour et al., ACL 2024): EA 400 items (200 scenarios x en/zh) and EU 800 (400 lines x 2 questions).

Subsets `EA`, `EU-emotion`, `EU-cause`; `lang` is the line's `language`; item id `emobench/<subset>/<qid>/<lang>`.
Labels are answer strings, mapped to their index in the line's choice list (order kept). The files hold no
question text: it is the authors' prompt wording (src/configs/prompts.yaml of github.com/Sahandfer/EmoBench),
filled with the line's subject and question type. The authors score EU as correct only when both the emotion
and the cause are right; join the two EU items on qid and lang for that.
"""
from __future__ import annotations

from pathlib import Path

from evaluation.benchmarks.common import read_jsonl, text_index
from evaluation.items import MCQItem

NAME = "emobench"
EA_QUESTION = {"en": "In this scenario, what is the most effective {q_type} for {subject}?",
               "zh": "在这个场景中，{subject}最有效的{q_type}是什么？"}
# subset -> (choices key, label key, question template per language)
EU_QUESTIONS = {
    "EU-emotion": ("emotion_choices", "emotion_label",
                   {"en": "What emotion(s) would {subject} ultimately feel in this situation?",
                    "zh": "在这种情况下，{subject}最终会感受到什么情绪？"}),
    "EU-cause": ("cause_choices", "cause_label",
                 {"en": "Why would {subject} feel these emotions in this situation?",
                  "zh": "{subject}为什么会在这种情况下感受到这些情绪？"}),
}


def _item(subset: str, row: dict, question: str, choices: list[str], label: str, where: str) -> MCQItem:
    lang = row["language"]
    return MCQItem(item_id=f"{NAME}/{subset}/{row['qid']}/{lang}", benchmark=NAME, subset=subset, lang=lang,
                   context=row["scenario"], question=question, choices=tuple(choices),
                   answer=text_index(choices, label, where))


def load(folder: Path) -> list[MCQItem]:
    items = []
    for line_no, row in read_jsonl(folder / "EA.jsonl"):
        question = EA_QUESTION[row["language"]].format(q_type=row["question type"], subject=row["subject"])
        items.append(_item("EA", row, question, row["choices"], row["label"], f"EA.jsonl:{line_no}"))
    for line_no, row in read_jsonl(folder / "EU.jsonl"):
        for subset, (choices_key, label_key, templates) in EU_QUESTIONS.items():
            question = templates[row["language"]].format(subject=row["subject"])
            items.append(_item(subset, row, question, row[choices_key], row[label_key], f"EU.jsonl:{line_no}"))
    return items
