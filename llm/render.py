"""Prompt rendering with a model's own chat template, and token counts with its tokenizer."""
from __future__ import annotations

from functools import lru_cache

from core.config import StorageConfig
from llm.models import resolve_model
from llm.settings import EngineConfig


class Renderer:
    """Renders messages with the engine model's chat template and counts tokens with its tokenizer.

    Engines without a local tokenizer (a hosted model, the table engine) count words and join the
    messages as plain text; vLLM and transformers always have one.
    """

    def __init__(self, tokenizer_path: str | None, storage: StorageConfig | None = None):
        self.tok = None
        if tokenizer_path:
            from transformers import AutoTokenizer

            self.tok = AutoTokenizer.from_pretrained(resolve_model(tokenizer_path, storage, weights=False))

    def count(self, text: str) -> int:
        if self.tok is None:
            return len(text.split())
        return len(self.tok(text, add_special_tokens=False).input_ids)

    def truncate(self, text: str, budget: int) -> str:
        """The first `budget` tokens of text (marked with an ellipsis when cut)."""
        if self.tok is None:
            words = text.split()
            return text if len(words) <= budget else " ".join(words[:budget]) + " ..."
        ids = self.tok(text, add_special_tokens=False).input_ids
        return text if len(ids) <= budget else self.tok.decode(ids[:budget]) + " ..."

    def render(self, messages: list[dict]) -> str:
        if self.tok is None or not getattr(self.tok, "chat_template", None):
            return "\n\n".join(f"{m['role']}: {m['content']}" for m in messages) + "\n\nassistant:"
        return self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


@lru_cache(maxsize=4)
def renderer_for(backend: str, model: str, tokenizer: str | None, storage: StorageConfig | None = None) -> Renderer:
    """One renderer per engine per process (the tokenizer loads once; an s3:// model's through `storage`)."""
    if backend in ("vllm", "transformers"):
        return Renderer(tokenizer or model, storage)
    return Renderer(tokenizer, storage)


def engine_renderer(cfg: EngineConfig, storage: StorageConfig | None = None) -> Renderer:
    return renderer_for(cfg.backend, cfg.model, cfg.tokenizer, storage)
