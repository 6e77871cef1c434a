"""Task heads: small modules with flat arguments that read an encoder's hidden states.

Every head maps ``states`` (B, T, H) and the batch to a dict of outputs (``logits``, ...) and,
when the batch carries its labels, a ``loss``. :class:`~nlptune.heads.model.TaskModel` holds one
encoder and one or more named heads.
"""

from nlptune.heads.classification import ClassificationHead, NextSentenceHead
from nlptune.heads.lm import Seq2SeqLMHead
from nlptune.heads.masked_lm import MaskedLMHead
from nlptune.heads.model import HeadSpec, TaskModel
from nlptune.heads.span import SpanHead
from nlptune.heads.target import TargetHead
from nlptune.heads.token import TokenHead

__all__ = [
    "ClassificationHead",
    "HeadSpec",
    "MaskedLMHead",
    "NextSentenceHead",
    "Seq2SeqLMHead",
    "SpanHead",
    "TargetHead",
    "TaskModel",
    "TokenHead",
]
