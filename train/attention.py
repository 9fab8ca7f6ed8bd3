"""`packed_sdpa`: the CPU counterpart of flash-attention varlen for packed sequences. Each example of a
packed row (found where the position ids restart at 0) attends causally within itself only, one
`scaled_dot_product_attention(is_causal=True)` call per example, so the cost is the sum of the
examples' squared lengths instead of the row's (a block-causal mask over the whole row costs the row's
square and loses sdpa's causal fast path). Registered with transformers' attention interfaces; the
model builds no mask for it."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface

NAME = "packed_sdpa"


def packed_sdpa_forward(module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                        attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                        **kwargs) -> tuple[torch.Tensor, None]:
    """query [1, H, L, D], key/value [1, Hkv, L, D] of one packed row -> [1, L, H, D]."""
    positions = kwargs.get("position_ids")
    if positions is None or query.shape[0] != 1 or attention_mask is not None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    groups = getattr(module, "num_key_value_groups", 1)
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    starts = (positions[0] == 0).nonzero().flatten().tolist()
    bounds = list(zip(starts, starts[1:] + [query.shape[2]]))
    outs = [F.scaled_dot_product_attention(query[:, :, s:e], key[:, :, s:e], value[:, :, s:e], is_causal=True,
                                           dropout_p=dropout if module.training else 0.0, scale=scaling)
            for s, e in bounds]
    return torch.cat(outs, dim=2).transpose(1, 2).contiguous(), None


def _no_mask(*args, **kwargs):
    return None


def register() -> str:
    """Make `attn_implementation="packed_sdpa"` available; returns its name."""
    AttentionInterface.register(NAME, packed_sdpa_forward)
    AttentionMaskInterface.register(NAME, _no_mask)
    return NAME
