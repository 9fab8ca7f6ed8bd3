"""Model names to local folders, and the tokenizer loaders (for training; for counting only)."""
from __future__ import annotations

import os
from functools import lru_cache

from core.config import StorageConfig


def resolve_model(name: str, storage: StorageConfig | None = None, weights: bool = True) -> str:
    """`smollm2` -> the converted SmolLM2-135M-Instruct folder; `s3://...` -> this node's cached copy
    (`llm.model_cache`, through `storage`; without the weights when only the tokenizer is wanted);
    anything else (a folder, a hub id) unchanged."""
    if name == "smollm2":
        from llm.local_models import smollm2_dir

        return smollm2_dir()
    if name.startswith("s3://"):
        from llm.model_cache import local_copy

        return local_copy(name, storage, weights)
    return name


def torch_dtype(name: str, on_gpu: bool):
    """A config's dtype as torch's: `auto` is bf16 on a GPU (what training and vLLM use there) and fp32
    on CPU (bf16 matmuls are slow there and its generations degenerate)."""
    import torch

    if name == "auto":
        return torch.bfloat16 if on_gpu else torch.float32
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"unknown dtype {name!r}: use auto, float32, bfloat16 or float16")
    return dtype


@lru_cache(maxsize=4)
def load_tokenizer(name: str, setting: str = "model", storage: StorageConfig | None = None):
    """The tokenizer of a model folder (or `smollm2`, or an s3:// folder through `storage`), loaded once per
    process; it must have a chat template (`setting` names the config key in the error)."""
    from transformers import AutoTokenizer

    return _with_template(AutoTokenizer.from_pretrained(resolve_model(name, storage, weights=False)), name, setting)


@lru_cache(maxsize=4)
def load_counting_tokenizer(name: str, setting: str = "model", storage: StorageConfig | None = None):
    """`load_tokenizer` for counting and rendering only: a folder with a `tokenizer.json` loads through
    transformers' tokenizers backend alone (the class `AutoTokenizer` picks for it), which does not import
    torch (1 s in a fresh process against 6 s: build-sft's every Ray worker pays it). Same ids, same template."""
    folder = resolve_model(name, storage, weights=False)
    if not os.path.exists(os.path.join(folder, "tokenizer.json")):
        return load_tokenizer(name, setting, storage)
    from transformers import PreTrainedTokenizerFast

    return _with_template(PreTrainedTokenizerFast.from_pretrained(folder), name, setting)


def _with_template(tok, name: str, setting: str):
    if tok.chat_template is None:
        raise ValueError(f"{setting} {name!r}: the tokenizer has no chat template (name an instruct model's folder)")
    return tok
