"""Training sequences: chat-template tokenisation with labels on assistant tokens only, and packing of
several examples into one sequence whose position ids restart at every example (transformers then
masks attention across example boundaries: flash-attention varlen on GPU, a block-causal mask with
sdpa/eager on CPU), or padded micro-batches when packing is off."""
from __future__ import annotations

import bisect
import random
from dataclasses import dataclass

import torch

IGNORE = -100


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]  # IGNORE outside assistant turns


@dataclass
class EncodeStats:
    examples: int = 0
    kept: int = 0
    truncated: int = 0
    dropped_no_target: int = 0  # nothing of an assistant turn left after truncation


def _ids(encoded) -> list[int]:
    return list(encoded["input_ids"] if not isinstance(encoded, list) else encoded)


def encode(tokenizer, messages: list[dict], max_len: int) -> tuple[Encoded | None, bool]:
    """Token ids of a conversation with its chat template, labels on every assistant turn (the turn's
    content and end-of-turn token, not its header nor the separator after it), cut to max_len. Returns (None, truncated) when no
    assistant token survives the cut."""
    full = _ids(tokenizer.apply_chat_template(messages, tokenize=True))
    labels = [IGNORE] * len(full)
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        prompt = _ids(tokenizer.apply_chat_template(messages[:i], tokenize=True, add_generation_prompt=True))
        upto = _ids(tokenizer.apply_chat_template(messages[:i + 1], tokenize=True))
        if full[:len(upto)] != upto or upto[:len(prompt)] != prompt:
            raise ValueError("the chat template does not render a conversation as a prefix of its continuation; "
                             "assistant-only labels need a prefix-stable template (turn " + str(i) + ")")
        end = len(upto)
        while end > len(prompt) and not tokenizer.decode(upto[end - 1:end]).strip():
            end -= 1  # the separator after the end-of-turn token belongs to no turn
        labels[len(prompt):end] = upto[len(prompt):end]
    truncated = len(full) > max_len
    full, labels = full[:max_len], labels[:max_len]
    if all(label == IGNORE for label in labels):
        return None, truncated
    return Encoded(full, labels), truncated


def encode_all(tokenizer, conversations: list[list[dict]], max_len: int) -> tuple[list[Encoded], EncodeStats]:
    stats = EncodeStats(examples=len(conversations))
    out = []
    for messages in conversations:
        enc, truncated = encode(tokenizer, messages, max_len)
        stats.truncated += int(truncated)
        if enc is None:
            stats.dropped_no_target += 1
            continue
        out.append(enc)
    stats.kept = len(out)
    return out, stats


@dataclass
class Pack:
    """Several examples in one sequence (or one example when packing is off)."""

    members: list[int]  # indices of the examples, in order
    length: int


def pack(lengths: list[int], capacity: int) -> list[Pack]:
    """Best-fit-decreasing packing of example lengths into sequences of at most `capacity` tokens
    (deterministic: ties broken by example index)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    packs: list[Pack] = []
    free: list[tuple[int, int]] = []  # (room left, pack index), sorted
    for i in order:
        n = lengths[i]
        j = bisect.bisect_left(free, (n, -1))
        if j < len(free):
            room, p = free.pop(j)
            packs[p].members.append(i)
            packs[p].length += n
            room -= n
        else:
            packs.append(Pack([i], n))
            p, room = len(packs) - 1, capacity - n
        if room > 0:
            bisect.insort(free, (room, p))
    return packs


def packing_efficiency(packs: list[Pack], capacity: int) -> float:
    """Real tokens / token slots of fixed-length sequences."""
    return sum(p.length for p in packs) / (len(packs) * capacity) if packs else 0.0


def packed_batch(examples: list[Encoded], members: list[int]) -> dict[str, torch.Tensor]:
    """One packed, padding-free sequence: [1, L] ids, labels and position ids restarting per example."""
    ids, labels, pos = [], [], []
    for i in members:
        ids += examples[i].input_ids
        labels += examples[i].labels
        pos += list(range(len(examples[i].input_ids)))
    return {"input_ids": torch.tensor([ids]), "labels": torch.tensor([labels]), "position_ids": torch.tensor([pos])}


def padded_batch(examples: list[Encoded], members: list[int], pad_id: int) -> dict[str, torch.Tensor]:
    """Examples padded on the right to the longest one, with an attention mask."""
    width = max(len(examples[i].input_ids) for i in members)
    ids = [examples[i].input_ids + [pad_id] * (width - len(examples[i].input_ids)) for i in members]
    labels = [examples[i].labels + [IGNORE] * (width - len(examples[i].labels)) for i in members]
    mask = [[1] * len(examples[i].input_ids) + [0] * (width - len(examples[i].input_ids)) for i in members]
    return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels), "attention_mask": torch.tensor(mask)}


def micro_batches(examples: list[Encoded], packing: bool, capacity: int, micro_batch_size: int) -> list[Pack]:
    """The micro-batches of one pass over the data: packs, or groups of `micro_batch_size` examples
    of similar length (sorted, to waste little padding)."""
    if packing:
        return pack([len(e.input_ids) for e in examples], capacity)
    order = sorted(range(len(examples)), key=lambda i: (len(examples[i].input_ids), i))
    return [Pack(order[k:k + micro_batch_size], sum(len(examples[i].input_ids) for i in order[k:k + micro_batch_size]))
            for k in range(0, len(order), micro_batch_size)]


def epoch_order(n: int, seed: int, epoch: int, world: int) -> list[int]:
    """A seeded shuffle of n micro-batches for one epoch, cut to a multiple of the world size so every
    rank runs the same number of steps."""
    order = list(range(n))
    random.Random(f"{seed}:{epoch}").shuffle(order)
    return order[: len(order) - len(order) % world]
