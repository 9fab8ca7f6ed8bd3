"""LM-Cocktail-style merge (PAPER.md 6): a weighted average of the tuned model and its base, tensor by
tensor (default 0.5/0.5); integer tensors are copied from the tuned model. The tokenizer, chat template
and config come from the tuned model.

The merge streams: it reads both models' safetensors shards tensor by tensor with plain file reads (no
mmap, so pages never pile up in the process), averages in fp32 and writes each result straight into
the output shard, in the tuned model's own dtype and shard layout. Memory stays at a few tensors
whatever the model size, so a 70B merge fits a small node.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import struct
import tempfile
from typing import BinaryIO, Iterator

import torch

from core.config import StorageConfig
from core.storage import RunRoot
from llm.models import resolve_model

log = logging.getLogger(__name__)

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool}


def average_state_dicts(tuned: dict, base: dict, weights: tuple[float, float]) -> dict:
    """w_tuned * tuned + w_base * base for floating tensors; other tensors copied from `tuned`."""
    _check_weights(weights)
    _check_names(set(tuned), set(base))
    return {name: _average(name, t, base[name], weights) for name, t in tuned.items()}


def _check_weights(weights: tuple[float, float]) -> None:
    if abs(weights[0] + weights[1] - 1.0) > 1e-6:
        raise ValueError(f"merge weights must sum to 1, got {weights}")


def _check_names(tuned: set[str], base: set[str]) -> None:
    missing = sorted(tuned ^ base)
    if missing:
        raise ValueError(f"the tuned and base models differ in {len(missing)} tensors (e.g. {missing[:3]}): "
                         "merge a model only with its own base")


def _average(name: str, t: torch.Tensor, b: torch.Tensor, weights: tuple[float, float],
             in_place: bool = False) -> torch.Tensor:
    """The weighted average in fp32, returned in t's dtype; `in_place` may overwrite t (streaming)."""
    if t.shape != b.shape:
        raise ValueError(f"tensor {name}: tuned {tuple(t.shape)} vs base {tuple(b.shape)}")
    if not torch.is_floating_point(t):
        return t if in_place else t.clone()
    if t.dtype == torch.float32:
        acc = t if in_place else t.clone()
    else:
        acc = t.float()
    acc.mul_(weights[0]).add_(b.float(), alpha=weights[1])
    return acc.to(t.dtype)


# ---- safetensors, read and written tensor by tensor ------------------------------------------------

def _header(f: BinaryIO) -> tuple[dict, int]:
    """(header without __metadata__, offset where tensor data starts) of an open safetensors file."""
    (size,) = struct.unpack("<Q", f.read(8))
    header = json.loads(f.read(size))
    header.pop("__metadata__", None)
    return header, 8 + size


def _read(f: BinaryIO, data_start: int, entry: dict) -> torch.Tensor:
    start, end = entry["data_offsets"]
    f.seek(data_start + start)
    buf = bytearray(f.read(end - start))
    dtype = DTYPES.get(entry["dtype"])
    if dtype is None:
        raise ValueError(f"safetensors dtype {entry['dtype']} is not supported by the merge")
    return torch.frombuffer(buf, dtype=dtype).reshape(entry["shape"]) if buf else torch.empty(entry["shape"], dtype=dtype)


def shard_files(model_dir: str) -> list[str]:
    """The safetensors files of a model folder (sharded or single)."""
    index = os.path.join(model_dir, INDEX)
    if os.path.exists(index):
        with open(index) as f:
            return sorted({os.path.join(model_dir, v) for v in json.load(f)["weight_map"].values()})
    single = os.path.join(model_dir, SINGLE)
    if os.path.exists(single):
        return [single]
    raise FileNotFoundError(f"{model_dir}: no {SINGLE} or {INDEX}; the merge reads safetensors "
                            "(save the model with save_pretrained(safe_serialization=True))")


class _TensorReader:
    """Reads any tensor of a model by name, opening its shard for that read only."""

    def __init__(self, model_dir: str):
        self.where: dict[str, tuple[str, dict, int]] = {}
        for path in shard_files(model_dir):
            with open(path, "rb") as f:
                header, start = _header(f)
            for name, entry in header.items():
                self.where[name] = (path, entry, start)

    def names(self) -> set[str]:
        return set(self.where)

    def get(self, name: str) -> torch.Tensor:
        path, entry, start = self.where[name]
        with open(path, "rb") as f:
            return _read(f, start, entry)


def _merged_tensors(shard: str, base: _TensorReader, weights: tuple[float, float]) -> Iterator[tuple[dict, memoryview]]:
    """(header entry, raw bytes) of each averaged tensor of one tuned shard, in file order."""
    with open(shard, "rb") as f:
        header, start = _header(f)
        for name, entry in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
            merged = _average(name, _read(f, start, entry), base.get(name), weights, in_place=True)
            yield entry, memoryview(merged.contiguous().reshape(-1).view(torch.uint8).numpy())


def merge_shard(shard: str, base: _TensorReader, out_path: str, weights: tuple[float, float]) -> None:
    """Write the averaged copy of one tuned shard (same header: same names, dtypes, shapes, offsets)."""
    with open(shard, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        raw_header = f.read(size)
    tmp = out_path + ".tmp"
    with open(tmp, "wb") as out:
        out.write(struct.pack("<Q", size))
        out.write(raw_header)
        data_start = out.tell()
        for entry, data in _merged_tensors(shard, base, weights):
            if out.tell() - data_start != entry["data_offsets"][0]:
                raise ValueError(f"{shard}: tensors are not stored contiguously; re-save the model")
            out.write(data)
    os.replace(tmp, out_path)


def merge_models(tuned: str, base: str, out_dir: str, weights: tuple[float, float] = (0.5, 0.5),
                 storage: StorageConfig | None = None) -> str:
    """Write the merged model (weights streamed shard by shard; config, tokenizer and chat template
    from the tuned model) to out_dir and return it. Models on S3 are read from this node's cached copy;
    an s3:// out_dir is written to a local temporary folder and uploaded."""
    _check_weights(weights)
    tuned_dir = resolve_model(tuned, storage)
    base_reader = _TensorReader(resolve_model(base, storage))
    shards = shard_files(tuned_dir)
    tuned_names: set[str] = set()
    for path in shards:
        with open(path, "rb") as f:
            tuned_names |= set(_header(f)[0])
    _check_names(tuned_names, base_reader.names())
    remote = "://" in out_dir
    target = tempfile.mkdtemp(prefix="humanllm-merge-") if remote else out_dir
    os.makedirs(target, exist_ok=True)
    for path in shards:
        merge_shard(path, base_reader, os.path.join(target, os.path.basename(path)), weights)
    weights_files = {os.path.basename(p) for p in shards}
    for name in os.listdir(tuned_dir):  # config, generation config, index, tokenizer, chat template
        src = os.path.join(tuned_dir, name)
        if name not in weights_files and os.path.isfile(src):
            shutil.copyfile(src, os.path.join(target, name))
    if remote:
        parent, name = out_dir.rstrip("/").rsplit("/", 1)
        RunRoot(parent, storage or StorageConfig()).put_dir(target, name)
        shutil.rmtree(target, ignore_errors=True)
    log.info("merged %s and %s with weights %s into %s (%d shards, streamed)", tuned, base, weights,
             out_dir, len(shards))
    return out_dir
