"""The multiple-choice item every benchmark loader yields, and its Arrow form."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import pyarrow as pa

from core import schema as S

LETTERS = "ABCDEFGHIJKLMNOPQRST"  # Hi-ToM has up to 15 options


@dataclass(frozen=True)
class MCQItem:
    """One benchmark question. `answer` is the index of the correct entry of `choices`."""

    item_id: str
    benchmark: str
    subset: str
    lang: str
    context: str
    question: str
    choices: tuple[str, ...]
    answer: int

    def __post_init__(self) -> None:
        if len(self.choices) < 2 or len(self.choices) > len(LETTERS):
            raise ValueError(f"{self.item_id}: {len(self.choices)} choices (2-{len(LETTERS)} supported)")
        if not 0 <= self.answer < len(self.choices):
            raise ValueError(f"{self.item_id}: answer index {self.answer} outside {len(self.choices)} choices")


def items_table(items: list[MCQItem]) -> pa.Table:
    """The items as an Arrow table in MCQ_ITEM_SCHEMA."""
    rows = [{**asdict(i), S.CHOICES: list(i.choices)} for i in items]
    return pa.Table.from_pylist(rows, schema=S.MCQ_ITEM_SCHEMA)


def items_from_table(table: pa.Table) -> list[MCQItem]:
    return [MCQItem(**{**r, S.CHOICES: tuple(r[S.CHOICES])}) for r in table.to_pylist()]
