"""Standard metrics for classification and regression (scikit-learn, scipy)."""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, L) logits (-inf entries get probability 0)."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def single_label(gold: np.ndarray, pred: np.ndarray, n_labels: int) -> dict[str, float]:
    """Accuracy, macro-F1, MCC, and for two classes the F1 of class 1 (GLUE's MRPC F1)."""
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    labels = list(range(n_labels))
    out = {
        "accuracy": float(accuracy_score(gold, pred)),
        "macro_f1": float(f1_score(gold, pred, labels=labels, average="macro", zero_division=0)),
        "mcc": float(matthews_corrcoef(gold, pred)) if len(gold) else 0.0,
    }
    if n_labels == 2:
        out["f1"] = float(f1_score(gold, pred, pos_label=1, average="binary", zero_division=0))
    return out


def multi_label(gold: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Micro/macro F1 over labels and exact-match (subset) accuracy; inputs are (N, L) 0/1."""
    from sklearn.metrics import f1_score

    return {
        "micro_f1": float(f1_score(gold, pred, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(gold, pred, average="macro", zero_division=0)),
        "subset_accuracy": float(np.mean(np.all(gold == pred, axis=1))) if len(gold) else 0.0,
    }


def regression(gold: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Pearson and Spearman correlation and mean squared error."""
    from scipy.stats import pearsonr, spearmanr

    constant = len(gold) < 2 or np.ptp(pred) == 0 or np.ptp(gold) == 0
    return {
        "pearson": 0.0 if constant else float(pearsonr(gold, pred)[0]),
        "spearman": 0.0 if constant else float(spearmanr(gold, pred)[0]),
        "mse": float(np.mean((gold - pred) ** 2)) if len(gold) else 0.0,
    }


def one_class(pred: list[str], gold: list[str], what: str = "example") -> str | None:
    """Why predictions are degenerate: one class for every item although the gold data has
    several (a model that has not learnt the task), or None. Items are label names."""
    kinds = set(pred)
    if len(pred) < 2 or len(kinds) != 1 or len(set(gold)) < 2:
        return None
    return (
        f"the model predicts {next(iter(kinds))!r} for all {len(pred)} {what}s although the "
        f"gold data has {len(set(gold))} classes: it has not learnt the task"
    )


DEGENERATE_ADVICE = (
    "train longer (trainer.epochs or trainer.min_steps), try another trainer.lr (2e-5 to 1e-4 "
    "for a transformer) or a smaller trainer.batch_size (more steps)"
)


def degenerate_warning(task: object, where: str) -> str | None:
    """The warning for a task whose last evaluation found degenerate predictions, or None."""
    why = getattr(task, "degenerate", None)
    return f"warning: on {where}, {why}; {DEGENERATE_ADVICE}" if why else None
