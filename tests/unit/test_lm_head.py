"""The text-to-text head: cross-entropy over the model's logits, padding ignored, smoothing."""

from __future__ import annotations

import torch

from nlptune.heads import Seq2SeqLMHead


def test_loss_ignores_padding_and_smooths() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 7)
    labels = torch.tensor([[1, 2, 3, -100], [4, 5, -100, -100]])
    plain = Seq2SeqLMHead(hidden_size=7)(logits, {"labels": labels})
    kept = labels != -100
    expected = torch.nn.functional.cross_entropy(logits[kept], labels[kept])
    assert torch.allclose(plain["loss"], expected)
    assert plain["logits"] is logits
    smooth = Seq2SeqLMHead(hidden_size=7, label_smoothing=0.1)(logits, {"labels": labels})
    expected = torch.nn.functional.cross_entropy(logits[kept], labels[kept], label_smoothing=0.1)
    assert torch.allclose(smooth["loss"], expected)
    assert "loss" not in Seq2SeqLMHead(hidden_size=7)(logits, {})


def test_slow_evaluation_is_named_once() -> None:
    from nlptune.config import TrainerConfig
    from nlptune.training.loop import _warn_slow_eval

    lines: list[str] = []

    class Log:
        def write(self, text: str) -> None:
            lines.append(text)

    warned = [False]
    _warn_slow_eval(Log(), 5.0, 20.0, TrainerConfig(), warned)
    assert lines == []
    _warn_slow_eval(Log(), 50.0, 20.0, TrainerConfig(), warned)
    _warn_slow_eval(Log(), 60.0, 20.0, TrainerConfig(), warned)
    assert len(lines) == 1 and "trainer.eval_samples" in lines[0]
