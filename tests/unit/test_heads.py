"""Heads, the TaskModel's loss sum, per-column padding, and the transformers export tables."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from nlptune.backbones.base import Export
from nlptune.backbones.hf_encoder import HFEncoder, HFEncoderModule
from nlptune.data.batching import collate
from nlptune.data.features import Features, sequence_lengths
from nlptune.heads import ClassificationHead, SpanHead, TaskModel, TokenHead


class _Fixed(torch.nn.Module):
    hidden_size = 4

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return batch["states"]


def test_task_model_sums_weighted_head_losses() -> None:
    torch.manual_seed(0)
    heads = {"a": ClassificationHead(4, 3), "b": ClassificationHead(4, 3, pooler=None)}
    model = TaskModel(_Fixed(), heads, {"a": 1.0, "b": 0.25}).eval()
    batch = {"states": torch.randn(2, 5, 4), "labels": torch.tensor([0, 2])}
    la, lb = (head(batch["states"], batch)["loss"] for head in heads.values())
    result = model(**batch)
    torch.testing.assert_close(result["loss"], la + 0.25 * lb)
    assert set(result) == {"loss", "logits", "a.logits", "b.logits", "a.loss", "b.loss"}
    torch.testing.assert_close(result["b.loss"], lb)  # each head's own loss, unweighted
    assert torch.equal(result["logits"], result["a.logits"])  # the first head is the main one
    assert "loss" not in model(states=batch["states"])  # no labels, no loss


def test_collate_pads_each_column_to_its_own_width() -> None:
    ids = [np.array([5, 6, 7]), np.array([5])]
    target = [np.array([1, 2, 3, 4, 5]), np.array([1, 2])]
    features = Features({"input_ids": ids, "labels": target}, lengths=sequence_lengths(ids))
    batch = collate(features, [0, 1], pad_id=9)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [5, 9, 9]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].shape == (2, 5) and batch["labels"][1, 2] == -100
    with pytest.raises(ValueError, match="lengths"):
        Features({"input_ids": ids}, lengths=np.array([3]))


class _NoText:
    def save(self, folder: Path) -> None:
        return None


def _tiny(model_type: str) -> Any:
    import transformers

    if model_type == "distilbert":
        kw: dict[str, Any] = dict(dim=16, n_layers=2, n_heads=2, hidden_dim=32)
    else:
        kw = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32)
        if model_type == "electra":
            kw["embedding_size"] = 16
    config = transformers.AutoConfig.for_model(
        model_type, vocab_size=40, max_position_embeddings=40, **kw
    )
    torch.manual_seed(0)
    return transformers.AutoModel.from_config(config)


@pytest.mark.parametrize(
    ("model_type", "kind", "head"),
    [
        (t, "sequence_classification", ClassificationHead)
        for t in ("bert", "roberta", "distilbert", "deberta-v2", "electra", "mpnet")
    ]
    + [("roberta", "token_classification", TokenHead), ("bert", "question_answering", SpanHead)],
)
def test_saved_model_is_the_standard_class_with_our_outputs(
    tmp_path: Path, model_type: str, kind: str, head: Any
) -> None:
    import transformers

    backbone = HFEncoder("unused")
    encoder = HFEncoderModule(_tiny(model_type))
    args = {} if head is SpanHead else {"num_labels": 3}
    options = backbone.head_options(head.kind, encoder)
    accepted = inspect.signature(head).parameters
    ours = head(16, **args, **{k: v for k, v in options.items() if k in accepted})
    model = TaskModel(encoder, {"main": ours}).eval()
    labels = ["a", "b", "c"] if head is not SpanHead else []
    backbone.save(model, _NoText(), tmp_path, Export(kind, labels))
    auto = {
        "sequence_classification": transformers.AutoModelForSequenceClassification,
        "token_classification": transformers.AutoModelForTokenClassification,
        "question_answering": transformers.AutoModelForQuestionAnswering,
    }[kind]
    theirs = auto.from_pretrained(tmp_path).eval()
    ids = torch.tensor([[2, 7, 9, 11, 3], [2, 5, 3, 0, 0]])
    mask = (ids > 0).long()
    with torch.no_grad():
        mine = model(input_ids=ids, attention_mask=mask, index=torch.arange(2))
        out = theirs(input_ids=ids, attention_mask=mask)
    key = "start_logits" if head is SpanHead else "logits"
    torch.testing.assert_close(mine[key], out[key], atol=1e-5, rtol=1e-4)
    if labels:
        assert theirs.config.id2label == {0: "a", 1: "b", 2: "c"}


def test_word_lm_head_without_word_pairs_still_reaches_every_parameter() -> None:
    """A batch of one-word sentences has nothing to predict; the zero loss must still give
    every parameter a gradient, or DDP waits for it forever."""
    from nlptune.heads.word_lm import WordLMHead

    head = WordLMHead(hidden_size=8, vocab_size=10).train()
    states = torch.randn(2, 2, 8, requires_grad=True)
    batch = {"input_ids": torch.tensor([[2, 5], [2, 6]]), "attention_mask": torch.ones(2, 2)}
    loss = head(states, batch)["loss"]
    loss.backward()
    assert float(loss.detach()) == 0.0
    assert head.out.weight.grad is not None and head.out.bias.grad is not None
    assert head.eval()(states, batch) == {}  # nothing at prediction time


@pytest.mark.parametrize(
    "model_type", ["bert", "roberta", "distilbert", "deberta-v2", "electra", "mpnet"]
)
def test_masked_lm_head_is_the_architectures_own(tmp_path: Path, model_type: str) -> None:
    """Our encoder + MaskedLMHead equals the saved AutoModelForMaskedLM, output layer tied."""
    import transformers

    from nlptune.heads import MaskedLMHead

    backbone = HFEncoder("unused")
    encoder = HFEncoderModule(_tiny(model_type))
    head = MaskedLMHead(16, **backbone.head_options("masked_lm", encoder))
    output = [m for m in head.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert output.weight is encoder.base.get_input_embeddings().weight  # tied, as transformers ties
    model = TaskModel(encoder, {"mlm": head}).eval()
    backbone.save(model, _NoText(), tmp_path, Export("masked_lm"))
    theirs = transformers.AutoModelForMaskedLM.from_pretrained(tmp_path).eval()
    ids = torch.tensor([[2, 7, 9, 11, 3], [2, 5, 3, 0, 0]])
    mask = (ids > 0).long()
    with torch.no_grad():
        mine = model(input_ids=ids, attention_mask=mask, mlm_positions=mask.bool())["logits"]
        out = theirs(input_ids=ids, attention_mask=mask).logits[mask.bool()]
    torch.testing.assert_close(mine, out, atol=1e-5, rtol=1e-4)
