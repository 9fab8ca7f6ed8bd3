"""Helpers the benchmark loaders share: reading raw files, option letters, answer lookup, seeded shuffles."""
from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

# "A. foo", "A.生气", "A．foo", "A、foo", "A) foo", "D.. foo" -> "foo": the expected letter, marks, then a
# blank or a non-ASCII character (so "A.I. robots" keeps its "A.").
_LETTER_PREFIX = r"^\s*{letter}\s*[.．、):：]+(?:\s+|(?=[^\x00-\x7f]))"
_ANSWER_LETTER = re.compile(r"^\s*([A-Z])(?:\s*[.．、):：].*)?\s*$", re.S)


def read_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return json.load(f)


def read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """(1-based line number, record) for every non-blank line."""
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if line.strip():
                yield line_no, json.loads(line)


def strip_letter(text: str, letter: str) -> str:
    """`text` without a leading "<letter>. " option label (only the given letter is removed)."""
    return re.sub(_LETTER_PREFIX.format(letter=re.escape(letter)), "", text, count=1).strip()


def split_lettered(options: str) -> list[str]:
    """ "A. x, B. y, C. z" -> ["x", "y", "z"]; raises ValueError if the letters are not A, B, C, ... in order."""
    parts = re.split(r",\s*(?=[A-Z]\.\s)", options.strip())
    letters = [chr(ord("A") + i) for i in range(len(parts))]
    for part, letter in zip(parts, letters):
        if not part.startswith(f"{letter}. "):
            raise ValueError(f"{options[:80]!r}...: option {part[:20]!r} does not start with '{letter}. '")
    return [strip_letter(part, letter) for part, letter in zip(parts, letters)]


def letter_index(answer: str, n_choices: int, where: str) -> int:
    """Index of an answer letter ("B", " b", "A. " ...) among `n_choices`; ValueError naming `where` otherwise."""
    m = _ANSWER_LETTER.match(answer.upper()) if isinstance(answer, str) else None
    idx = ord(m.group(1)) - ord("A") if m else -1
    if not 0 <= idx < n_choices:
        raise ValueError(f"{where}: answer {answer!r} is not a letter among the {n_choices} choices")
    return idx


def text_index(choices: Sequence[str], answer: str, where: str) -> int:
    """Index of the choice equal to `answer` (after stripping blanks); ValueError naming `where` otherwise."""
    stripped = [c.strip() for c in choices]
    if stripped.count(answer.strip()) != 1:
        raise ValueError(f"{where}: answer {answer!r} is not exactly one of the choices {list(choices)}")
    return stripped.index(answer.strip())


def shuffle_choices(choices: Sequence[str], answer: int, key: str) -> tuple[tuple[str, ...], int]:
    """`choices` in an order seeded by sha256(`key`) (stable across runs and Pythons), and the answer's new index."""
    order = list(range(len(choices)))
    random.Random(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")).shuffle(order)
    return tuple(choices[i] for i in order), order.index(answer)
