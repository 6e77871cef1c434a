"""``nlptune vectors adapt``: continue training pre-trained word vectors on unlabelled target text.

gensim's word2vec is initialised from the pre-trained rows of the corpus's words (with case
fallback), words new to the vectors start as gensim starts them, and training runs over the
corpus. The output is the whole original vocabulary (the corpus's words adapted, the rest as
they were) plus the new words, in word2vec format (text; ``.gz``; ``.bin`` for binary), which is
a ``backbone.path`` for any static-vectors task.
"""

from __future__ import annotations

import gzip
import logging
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from nlptune.backbones.word_text import split_words
from nlptune.data.features import atomic_write
from nlptune.data.plain import read_lines, text_files
from nlptune.data.vectors import iter_vectors, read_vectors
from nlptune.errors import DataError, NlptuneError

logger = logging.getLogger("nlptune")


class Corpus:
    """Sentences (one a line) of a text file or of every .txt/.txt.gz/.gz file in a folder, as
    lists of words; iterable again and again (gensim makes several passes)."""

    def __init__(self, path: str | Path, lowercase: bool = False) -> None:
        self.files = text_files(path, "corpus")  # checked now, listed once
        self.lowercase = lowercase

    def __iter__(self) -> Iterator[list[str]]:
        for file in self.files:
            for line, _, _ in read_lines(file, "corpus"):
                words = split_words(line.lower() if self.lowercase else line)
                if words:
                    yield words


def adapt(
    vectors: str,
    corpus: str,
    out: str,
    *,
    epochs: int = 5,
    min_count: int = 5,
    window: int = 5,
    skipgram: bool = False,
    lowercase: bool = False,
    seed: int = 1,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Adapt ``vectors`` to ``corpus`` and write ``out``. Returns a summary."""
    from gensim.models import Word2Vec
    from gensim.models.callbacks import CallbackAny2Vec

    from nlptune.backbones.packaged import vectors_path

    source = vectors_path(vectors)
    target = Path(out)
    if target.is_dir():
        raise NlptuneError(f"-o {out} is a folder; give a file name (.txt, .gz or .bin)")
    if target.exists() and not overwrite:
        raise NlptuneError(f"-o {out} exists; pass --overwrite to replace it, or choose another")
    if target.resolve() == source.resolve() or target.resolve().is_relative_to(source.resolve()):
        raise NlptuneError(f"-o {out} would replace the input vectors; choose another path")
    if target.resolve().is_relative_to(Path(corpus).resolve()):
        raise NlptuneError(f"-o {out} is inside the corpus {corpus}; write it elsewhere")
    sentences = Corpus(corpus, lowercase)
    first = next(iter_vectors(source), None)
    if first is None:
        raise NlptuneError(f"{vectors}: holds no vectors")
    dim = first[0]
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise NlptuneError(f"-o {out}: can't make its folder: {err.strerror}") from None
    model = Word2Vec(
        vector_size=dim,
        window=window,
        min_count=min_count,
        sg=int(skipgram),
        seed=seed,
        workers=workers,
    )
    model.build_vocab(sentences)
    if not model.wv.index_to_key:
        raise DataError(
            f"corpus {corpus}: no word occurs {min_count} times; lower --min-count or add text"
        )
    words = list(model.wv.index_to_key)
    table = read_vectors(source, set(words) | {w.lower() for w in words})
    initialised = 0
    for i, word in enumerate(words):
        row = table.rows.get(word)
        if row is None:
            row = table.rows.get(word.lower())
        if row is not None:
            model.wv.vectors[i] = row
            initialised += 1

    class Bar(CallbackAny2Vec):
        def __init__(self) -> None:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=epochs, unit="epoch", disable=not progress)

        def on_epoch_end(self, model: Any) -> None:
            self.bar.update(1)

    bar = Bar()
    model.train(sentences, total_examples=model.corpus_count, epochs=epochs, callbacks=[bar])
    bar.bar.close()
    adapted = {w: model.wv.vectors[i] for i, w in enumerate(words)}
    try:
        written = _write(source, adapted, target, dim)
    except OSError as err:  # a full disk, a folder that is not writable
        raise NlptuneError(f"-o {out}: can't write: {err}") from None
    summary = {
        "output": str(target),
        "dim": dim,
        "sentences": model.corpus_count,
        "corpus_words": len(words),
        "initialised_from_vectors": initialised,
        "new_words": len(words) - initialised,
        "written": written,
        "epochs": epochs,
    }
    logger.info(
        "adapted %s of %s corpus words from the vectors (%.1f%%), %s new; wrote %s words to %s",
        f"{initialised:,}",
        f"{len(words):,}",
        100 * initialised / len(words),
        f"{len(words) - initialised:,}",
        f"{written:,}",
        out,
    )
    return summary


def _write(source: Path, adapted: dict[str, np.ndarray], target: Path, dim: int) -> int:
    """The original rows (adapted where the corpus had the word) and then the new words, in
    word2vec format; the body goes to a temporary file first (the header needs the count)."""
    body = target.with_name(f".{target.name}.{os.getpid()}.body")
    binary = target.suffix == ".bin"
    seen: set[str] = set()
    count = 0
    try:
        with open(body, "wb") as f:
            for _dim, word, vector in iter_vectors(source):
                if word in seen:
                    continue
                seen.add(word)
                _record(f, word, adapted.get(word, vector), binary)
                count += 1
            for word, vector in adapted.items():
                if word not in seen:
                    _record(f, word, vector, binary)
                    count += 1

        def write(out: IO[bytes]) -> None:
            stream: Any = gzip.GzipFile(fileobj=out, mode="wb") if target.suffix == ".gz" else out
            stream.write(f"{count} {dim}\n".encode())
            with open(body, "rb") as src:
                while chunk := src.read(1 << 20):
                    stream.write(chunk)
            if stream is not out:
                stream.close()

        atomic_write(target.resolve(), write)  # a symlink's file is replaced, the link stays
    finally:
        body.unlink(missing_ok=True)
    return count


def _record(f: IO[bytes], word: str, vector: np.ndarray, binary: bool) -> None:
    if any(c.isspace() for c in word):
        word = "_".join(word.split())  # word2vec separates a word from its values by a space
    if binary:
        f.write(word.encode("utf-8") + b" " + struct.pack(f"<{len(vector)}f", *vector) + b"\n")
    else:
        values = " ".join(f"{x:.6g}" for x in np.asarray(vector, dtype=np.float32))
        f.write(f"{word} {values}\n".encode())
