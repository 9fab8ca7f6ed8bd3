"""Token counts of SFT examples with the base model's own tokenizer and chat template."""
from __future__ import annotations


def count_tokens(tokenizer, conversations: list[list[dict]]) -> tuple[list[int], list[int]]:
    """(whole example with the chat template, assistant turn alone) token counts per conversation."""
    if not conversations:
        return [], []
    whole = tokenizer.apply_chat_template(conversations, tokenize=True)["input_ids"]
    targets = tokenizer([c[-1]["content"] for c in conversations], add_special_tokens=False)["input_ids"]
    return [len(ids) for ids in whole], [len(ids) for ids in targets]
