"""LM-Cocktail-style merge (PAPER.md 6): a weighted average of the tuned model and its base, tensor by
tensor (default 0.5/0.5); integer buffers are copied from the tuned model. Exported with
`save_pretrained`, with the tuned model's tokenizer and chat template."""
from __future__ import annotations

import logging

import torch

from llm.models import resolve_model

log = logging.getLogger(__name__)


def average_state_dicts(tuned: dict, base: dict, weights: tuple[float, float]) -> dict:
    """w_tuned * tuned + w_base * base for floating tensors; other tensors copied from `tuned`."""
    w_tuned, w_base = weights
    if abs(w_tuned + w_base - 1.0) > 1e-6:
        raise ValueError(f"merge weights must sum to 1, got {weights}")
    missing = sorted(set(tuned) ^ set(base))
    if missing:
        raise ValueError(f"the tuned and base models differ in {len(missing)} tensors (e.g. {missing[:3]}): "
                         "merge a model only with its own base")
    out = {}
    for name, t in tuned.items():
        b = base[name]
        if t.shape != b.shape:
            raise ValueError(f"tensor {name}: tuned {tuple(t.shape)} vs base {tuple(b.shape)}")
        if torch.is_floating_point(t):
            out[name] = (w_tuned * t.float() + w_base * b.float()).to(t.dtype)
        else:
            out[name] = t.clone()
    return out


def merge_models(tuned_dir: str, base: str, out_dir: str, weights: tuple[float, float] = (0.5, 0.5)) -> str:
    """Write the merged model (and the tuned model's tokenizer) to out_dir."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tuned = AutoModelForCausalLM.from_pretrained(tuned_dir, dtype=torch.float32)
    base_model = AutoModelForCausalLM.from_pretrained(resolve_model(base), dtype=torch.float32)
    merged = average_state_dicts(tuned.state_dict(), base_model.state_dict(), weights)
    tuned.load_state_dict(merged)
    tuned.save_pretrained(out_dir)
    AutoTokenizer.from_pretrained(tuned_dir).save_pretrained(out_dir)
    log.info("merged %s and %s with weights %s into %s", tuned_dir, base, weights, out_dir)
    return out_dir
