"""Training data: the SFT stage's messages export (`<split>.jsonl`) or its Parquet split folder."""
from __future__ import annotations

import json

from core.config import StorageConfig
from core.storage import expand_glob, open_input, RunRoot


def load_conversations(data: str, split: str, limit: int | None = None,
                       storage: StorageConfig | None = None) -> list[list[dict]]:
    """The `messages` of a split, in file order (the SFT stage's fixed shuffle), at most `limit`;
    `data` is a local folder or an s3:// one reached through `storage`."""
    jsonl = f"{data.rstrip('/')}/{split}.jsonl"
    out: list[list[dict]] = []
    if expand_glob(jsonl, storage):
        with open_input(jsonl, storage) as f:
            lines = f.read().splitlines()
        for n, line in enumerate(lines, 1):
            if limit is not None and len(out) >= limit:
                break
            try:
                out.append(json.loads(line)["messages"])
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ValueError(f"{jsonl}:{n}: not a JSON object with `messages` ({exc})") from None
        return out
    table = RunRoot(data, storage or StorageConfig()).read_parquet(split, columns=["messages"])
    if table.num_rows == 0:
        raise FileNotFoundError(f"no training data: neither {jsonl} nor Parquet under {data}/{split}; "
                                f"run `humanllm build-sft` first or set train.data")
    rows = table["messages"].to_pylist()
    return rows[:limit] if limit is not None else rows
