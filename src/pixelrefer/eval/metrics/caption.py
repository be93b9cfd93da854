"""COCO caption metrics (BLEU-1..4, METEOR, ROUGE-L, CIDEr, SPICE) through pycocoevalcap.

Follows the official ``change2eval_format.py`` + ``eval_cococap.py`` pipeline: one reference per item,
the prediction cut to its first 100 space-separated words, PTB tokenisation, scores reported × 100.
Tokenisation needs Java; without it a pure-Python approximation is used and recorded. METEOR needs
Java (one JVM per process, ~14 s to start). SPICE needs Stanford CoreNLP jars that pycocoevalcap
downloads on first use; when they are absent (offline machines) SPICE is skipped with a note.
"""

from __future__ import annotations

import functools
import logging
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

MAX_PREDICTION_WORDS = 100
_PTB_PUNCTUATION = {
    "''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-",
    ".", "?", "!", ",", ":", "-", "--", "...", ";",
}  # fmt: skip
_WORD = re.compile(r"\w+(?:'\w+)?|[^\w\s]+")


@dataclass
class CaptionScores:
    """Corpus-level scores (× 100) plus which scorers ran and why some did not."""

    scores: dict[str, float]
    tokenizer: str
    notes: list[str] = field(default_factory=list)


def java_available() -> bool:
    return shutil.which("java") is not None


def simple_tokenize(text: str) -> str:
    """Lowercase, split off punctuation, drop PTB punctuation tokens (used only without Java)."""
    return " ".join(tok for tok in _WORD.findall(text.lower()) if tok not in _PTB_PUNCTUATION)


def _tokenize(captions: dict[str, list[str]], use_java: bool) -> dict[str, list[str]]:
    if use_java:
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

        return PTBTokenizer().tokenize({k: [{"caption": c} for c in v] for k, v in captions.items()})
    return {k: [simple_tokenize(c) for c in v] for k, v in captions.items()}


def spice_available() -> bool:
    import pycocoevalcap.spice as spice_pkg

    lib = Path(spice_pkg.__file__).parent / "lib"
    return java_available() and any(lib.glob("stanford-corenlp-3.6.0*.jar"))


@functools.lru_cache(maxsize=1)
def _meteor() -> Any:
    from pycocoevalcap.meteor.meteor import Meteor

    return Meteor()


def caption_metrics(
    predictions: list[str], references: list[str], *, meteor: bool = True, spice: bool = True
) -> CaptionScores:
    """Score predictions against one reference each. Empty predictions (failed items) score as given."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if not predictions:
        return CaptionScores(scores={}, tokenizer="none", notes=["no items to score"])
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    use_java = java_available()
    notes: list[str] = [] if use_java else ["Java not found: PTB tokenisation approximated in Python"]
    keys = [str(i) for i in range(len(predictions))]
    res = _tokenize(
        {k: [" ".join(p.split(" ")[:MAX_PREDICTION_WORDS])] for k, p in zip(keys, predictions)}, use_java
    )
    gts = _tokenize({k: [r] for k, r in zip(keys, references)}, use_java)
    res = {k: [v[0] if v and v[0].strip() else "<empty>"] for k, v in res.items()}
    scores: dict[str, float] = {}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    scores.update({f"BLEU-{n + 1}": 100.0 * float(v) for n, v in enumerate(bleu)})
    if meteor and use_java:
        scores["METEOR"] = 100.0 * float(_meteor().compute_score(gts, res)[0])
    elif meteor:
        notes.append("METEOR skipped: needs Java")
    else:
        notes.append("METEOR skipped (disabled)")
    scores["ROUGE-L"] = 100.0 * float(Rouge().compute_score(gts, res)[0])
    scores["CIDEr"] = 100.0 * float(Cider().compute_score(gts, res)[0])
    if spice and spice_available():
        from pycocoevalcap.spice.spice import Spice

        scores["SPICE"] = 100.0 * float(Spice().compute_score(gts, res)[0])
    elif spice:
        notes.append(
            "SPICE skipped: it needs Stanford CoreNLP 3.6.0 jars, which pycocoevalcap downloads (offline here)"
        )
    return CaptionScores(scores=scores, tokenizer="ptb" if use_java else "simple", notes=notes)
