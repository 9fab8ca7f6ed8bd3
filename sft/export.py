"""The trainer-facing export of sft/: one JSON object `{"messages": [{role, content}, ...]}` per line
(no user ids), which LLaMA-Factory (sharegpt format, see dataset_info.json), TRL (conversational
`messages`) and axolotl (`type: chat_template`) read unchanged."""
from __future__ import annotations

import json
import os
import tempfile

import pyarrow.parquet as pq

from core import schema as S
from core.layout import RunLayout


def llamafactory_info() -> dict:
    """dataset_info.json entries for both splits (LLaMA-Factory's sharegpt format with OpenAI-style roles)."""
    tags = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
            "system_tag": "system"}
    return {f"humanllm_sft_{split}": {"file_name": RunLayout.export_file(split), "formatting": "sharegpt",
                                      "columns": {"messages": "messages"}, "tags": tags}
            for split in (S.TRAIN, S.TEST)}


def write_jsonl(layout: RunLayout, split: str) -> int:
    """Stream sft/<split>/ (file by file, in example-id order: a fixed shuffle) into <split>.jsonl."""
    fd, tmp = tempfile.mkstemp(suffix=".jsonl", prefix=f"sft-{split}-")
    rows = 0
    root = layout.root
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        for rel in root.list(layout.sft_split(split), suffix=".parquet"):
            table = pq.read_table(root.path(rel), columns=[S.MESSAGES], filesystem=root.fs)
            for messages in table[S.MESSAGES].to_pylist():
                out.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")
                rows += 1
    root.put_file(tmp, layout.sft_export(RunLayout.export_file(split)))
    return rows


def write_exports(layout: RunLayout) -> dict:
    """Both splits as JSONL plus LLaMA-Factory's dataset_info.json; returns rows per file."""
    out = {RunLayout.export_file(split): write_jsonl(layout, split) for split in (S.TRAIN, S.TEST)}
    layout.root.write_json(layout.sft_export("dataset_info.json"), llamafactory_info())
    return out
