"""The LLM judge of generative in-domain tasks: a pointwise 1-10 rubric score against the person's real
answer, and pairwise preference of model A vs model B judged in both orders (position swap).
Prompts are data (`prompts/judge.yaml`)."""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import yaml

PROMPTS = Path(__file__).with_name("prompts") / "judge.yaml"
POINTWISE, PAIRWISE = "judge_pointwise", "judge_pairwise"
FAMILIES = (("writing", ("writing_imitation", "review_imitation", "personalized_comment")),
            ("profile", ("persona2profile",)), ("story", ("stories", "story", "half_")),
            ("social_qa", ("sqa_", "thoughts")), ("scenario", ("scenario",)))
PROMPT_WORDS, ANSWER_WORDS = 600, 400
# Engines with structured outputs (vLLM) make the verdict line parseable: the format, then free text.
VERDICT_REGEX = {POINTWISE: r"Score: (10|[1-9])\n[^\n]*", PAIRWISE: r"Winner: (1|2|tie)\n[^\n]*"}

_SCORE = re.compile(r"score\s*[:：=]?\s*\**\s*(\d{1,2})(?:\s*/\s*10)?", re.IGNORECASE)
_NUMBER = re.compile(r"\b(10|[1-9])\b")
_WINNER = re.compile(r"winner\s*[:：]?\s*\**\s*(1|2|tie)\b", re.IGNORECASE)


@lru_cache(maxsize=1)
def templates() -> dict:
    return yaml.safe_load(PROMPTS.read_text())


def criterion(task: str) -> str:
    """The rubric sentence of a task's family."""
    crit = templates()["criteria"]
    for family, keys in FAMILIES:
        if any(k in task for k in keys):
            return crit[family]
    return crit["default"]


def _cut(text: str, words: int, keep_end: bool = False) -> str:
    parts = text.split()
    if len(parts) <= words:
        return text.strip()
    return ("... " + " ".join(parts[-words:])) if keep_end else (" ".join(parts[:words]) + " ...")


def pointwise_prompt(task: str, prompt: str, reference: str, output: str) -> str:
    return templates()["pointwise"].format(prompt=_cut(prompt, PROMPT_WORDS, keep_end=True),
                                           reference=_cut(reference, ANSWER_WORDS),
                                           output=_cut(output, ANSWER_WORDS) or "(empty)", criterion=criterion(task))


def pairwise_prompt(task: str, prompt: str, reference: str, first: str, second: str) -> str:
    return templates()["pairwise"].format(prompt=_cut(prompt, PROMPT_WORDS, keep_end=True),
                                          reference=_cut(reference, ANSWER_WORDS),
                                          first=_cut(first, ANSWER_WORDS) or "(empty)",
                                          second=_cut(second, ANSWER_WORDS) or "(empty)", criterion=criterion(task))


def parse_score(text: str) -> int | None:
    """The 1-10 score of a pointwise verdict: "Score: N", else the first number 1-10; None if absent."""
    m = _SCORE.search(text)
    if m and 1 <= int(m.group(1)) <= 10:
        return int(m.group(1))
    m = _NUMBER.search(text)
    return int(m.group(1)) if m else None


def parse_winner(text: str) -> str | None:
    """"1", "2" or "tie" from a pairwise verdict; None if it names none."""
    m = _WINNER.search(text)
    return m.group(1).lower() if m else None


def swap_outcome(a_first: str | None, b_first: str | None) -> str | None:
    """A's result from the two orders (A shown first, then B shown first): "win" when both verdicts
    prefer A, "loss" when both prefer B, "tie" otherwise (a tie, or the verdict followed the position);
    None when neither verdict could be parsed."""
    if a_first is None and b_first is None:
        return None
    a = {"1": 1, "2": -1}.get(a_first or "", 0)
    b = {"2": 1, "1": -1}.get(b_first or "", 0)
    if a > 0 and b > 0:
        return "win"
    if a < 0 and b < 0:
        return "loss"
    return "tie"


def win_rate(outcomes: list[str | None]) -> dict:
    """(wins + ties/2) / judged, with the counts; unparsed pairs are left out and counted."""
    judged = [o for o in outcomes if o is not None]
    wins, ties = judged.count("win"), judged.count("tie")
    return {"n": len(judged), "wins": wins, "ties": ties, "losses": judged.count("loss"),
            "unparsed": len(outcomes) - len(judged),
            "win_rate": (wins + 0.5 * ties) / len(judged) if judged else float("nan")}
