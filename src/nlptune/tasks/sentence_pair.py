"""``sentence_pair``: entailment, paraphrase (labels) and similarity (a score) for two texts.

The texts are encoded as a real pair (``[CLS] a [SEP] b [SEP]`` with token type ids), never as
one joined string. Everything else is :mod:`nlptune.tasks.text_classification`.
"""

from __future__ import annotations

from pydantic import Field

from nlptune.registry import TASKS
from nlptune.tasks.text_classification import TextClassification, TextClassificationConfig


class SentencePairConfig(TextClassificationConfig):
    type: str = Field("sentence_pair", description="task name (nlptune list tasks)")


@TASKS.register("sentence_pair")
class SentencePair(TextClassification):
    """Classify or score a pair of texts (``data.text`` and ``data.text_pair``)."""

    Config = SentencePairConfig
    pair = True
