"""SQuAD EM and F1 exactly as the official evaluation scripts (v1.1 and v2.0) compute them.

Answers are normalised (lower case, punctuation and the articles a/an/the removed, white space
collapsed); each prediction takes the maximum over its gold answers; an unanswerable question's
only gold answer is "". For v2.0, ``na_diff`` (no-answer score minus best-span score) picks the
threshold above which predicting "" maximises EM and F1 (``best_exact_thresh``/``best_f1_thresh``).
"""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Mapping, Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def normalize_answer(s: str) -> str:
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def exact(gold: str, pred: str) -> int:
    return int(normalize_answer(gold) == normalize_answer(pred))


def f1(gold: str, pred: str) -> float:
    gold_toks, pred_toks = normalize_answer(gold).split(), normalize_answer(pred).split()
    common = collections.Counter(gold_toks) & collections.Counter(pred_toks)
    same = sum(common.values())
    if not gold_toks or not pred_toks:  # an empty answer only matches an empty answer
        return float(gold_toks == pred_toks)
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_toks), same / len(gold_toks)
    return 2 * precision * recall / (precision + recall)


def score(
    golds: Mapping[str, Sequence[str]],
    preds: Mapping[str, str],
    na_diff: Mapping[str, float] | None = None,
    threshold: float = 0.0,
) -> dict[str, float]:
    """Official metrics in percent.

    Args:
        golds: gold answer texts per question id ([] for an unanswerable question).
        preds: the best non-empty span per question (v1.1: the prediction).
        na_diff: v2.0: no-answer score minus best-span score; "" is predicted where it exceeds
            ``threshold`` (the official ``na_prob`` with ``na_prob_thresh``).
    """
    ex_raw: dict[str, float] = {}
    f1_raw: dict[str, float] = {}
    for qid, answers in golds.items():
        gold = [a for a in answers if normalize_answer(a)] or [""]
        pred = preds.get(qid, "")
        ex_raw[qid] = max(exact(a, pred) for a in gold)
        f1_raw[qid] = max(f1(a, pred) for a in gold)
    has = [q for q, a in golds.items() if any(normalize_answer(x) for x in a)]
    has_set = set(has)
    ex, fs = dict(ex_raw), dict(f1_raw)
    if na_diff is not None:
        for qid in golds:
            if na_diff.get(qid, float("-inf")) > threshold:  # predict no answer
                ex[qid] = fs[qid] = float(qid not in has_set)
    out = {"exact": _mean(ex, golds), "f1": _mean(fs, golds), "total": len(golds)}
    no = [q for q in golds if q not in has_set]
    if no or na_diff is not None:
        out.update(
            HasAns_exact=_mean(ex, has),
            HasAns_f1=_mean(fs, has),
            HasAns_total=len(has),
            NoAns_exact=_mean(ex, no),
            NoAns_f1=_mean(fs, no),
            NoAns_total=len(no),
        )
    if na_diff is not None:
        out["best_exact"], out["best_exact_thresh"] = _best(preds, ex_raw, na_diff, has_set)
        out["best_f1"], out["best_f1_thresh"] = _best(preds, f1_raw, na_diff, has_set)
    return out


def _mean(values: Mapping[str, float], ids: Sequence[str] | Mapping[str, object]) -> float:
    ids = list(ids)
    return 100.0 * sum(values[q] for q in ids) / len(ids) if ids else 0.0


def _best(
    preds: Mapping[str, str],
    scores: Mapping[str, float],
    na_diff: Mapping[str, float],
    has_ans: set[str],
) -> tuple[float, float]:
    """The official find_best_thresh: sweep the no-answer threshold over the observed diffs."""
    cur = best = float(len(scores) - len(has_ans))
    best_thresh = 0.0
    for qid in sorted(na_diff, key=lambda k: na_diff[k]):
        if qid not in scores:
            continue
        # answering qid gains its score, or loses the point of a correctly empty answer
        cur += scores[qid] if qid in has_ans else (-1 if preds.get(qid) else 0)
        if cur > best:
            best, best_thresh = cur, na_diff[qid]
    return 100.0 * best / len(scores), best_thresh
