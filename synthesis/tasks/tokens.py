"""Token counts of SFT examples with the base model's own tokenizer and chat template."""
from __future__ import annotations

from functools import lru_cache

from synthesis.engines import resolve_model


@lru_cache(maxsize=4)
def load_tokenizer(name: str):
    """The tokenizer of a model folder (or `smollm2`), loaded once per process."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve_model(name))
    if tok.chat_template is None:
        raise ValueError(f"sft.tokenizer {name!r} has no chat template: name the base model's tokenizer folder")
    return tok


def count_tokens(tokenizer, conversations: list[list[dict]]) -> tuple[list[int], list[int]]:
    """(whole example with the chat template, assistant turn alone) token counts per conversation."""
    if not conversations:
        return [], []
    whole = tokenizer.apply_chat_template(conversations, tokenize=True)["input_ids"]
    targets = tokenizer([c[-1]["content"] for c in conversations], add_special_tokens=False)["input_ids"]
    return [len(ids) for ids in whole], [len(ids) for ids in targets]
