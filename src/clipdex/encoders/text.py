"""Text tokenizers of the model layouts clipdex reads, all behind one call: texts -> (ids, mask).

* ``tokenizer.json`` (Hugging Face ``tokenizers``): clipdex, transformers, immich,
  transformers.js and fastembed folders. The pad token comes from the folder's
  ``tokenizer_config.json`` / ``special_tokens_map.json`` when it names one.
* OpenAI's BPE merges file (``bpe_simple_vocab_16e6.txt.gz``): OpenAI CLIP,
  open_clip and rclip. Built here as a ``tokenizers`` BPE with the same
  vocabulary order (bytes, bytes + ``</w>``, merges, start, end), lower-casing,
  whitespace clean-up and the same word pattern; padded with 0.
* SentencePiece ``spiece.model`` (Google's SigLIP layout): SigLIP's text
  canonicalisation (punctuation removed, whitespace collapsed, lower case),
  then the pieces and ``</s>``, padded with the checkpoint's pad token.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from clipdex.errors import MissingExtraError, ModelNotFoundError

__all__ = ["TextTokenizer", "configured_pad_token", "load_text_tokenizer", "openai_bpe", "siglip_canonical"]

Batch = tuple[np.ndarray, np.ndarray]


class TextTokenizer:
    """Token ids and attention mask ``(n, L)`` int64 for a batch of texts.

    ``L`` is the longest text of the batch, or ``context_length`` for every
    batch when ``pad_to_context`` (graphs with a fixed length, SigLIP).
    """

    def __init__(self, encode: Callable[[str], list[int]], context_length: int, pad_id: int,
                 pad_to_context: bool, end_id: int | None = None) -> None:
        self._encode = encode
        self.context_length = context_length
        self.pad_id = pad_id
        self.pad_to_context = pad_to_context
        self.end_id = end_id  # kept as the last token when a text is cut (OpenAI's rule)

    def __call__(self, texts: list[str]) -> Batch:
        rows = [self._cut(self._encode(t)) for t in texts]
        width = self.context_length if self.pad_to_context else max((len(r) for r in rows), default=1)
        ids = np.full((len(rows), max(width, 1)), self.pad_id, np.int64)
        mask = np.zeros_like(ids)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        return ids, mask

    def _cut(self, row: list[int]) -> list[int]:
        if len(row) <= self.context_length:
            return row
        row = row[: self.context_length]
        if self.end_id is not None:
            row[-1] = self.end_id
        return row


def configured_pad_token(folder: Path) -> str | None:
    """The pad token a checkpoint's tokenizer config names (``tokenizer_config.json``, ``special_tokens_map.json``)."""
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        path = folder / name
        if not path.is_file():
            continue
        try:
            token = json.loads(path.read_text(encoding="utf-8")).get("pad_token")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(token, dict):
            token = token.get("content")
        if isinstance(token, str) and token:
            return token
    return None


def load_text_tokenizer(path: Path, context_length: int, pad_id: int | None, pad_to_context: bool,
                        spec: str, canonical: str = "") -> TextTokenizer:
    """The tokenizer stored at ``path`` (``tokenizer.json``, a BPE ``.txt.gz`` or ``spiece.model``).

    ``pad_id`` None: the folder's configured pad token, else 0. ``canonical="siglip"``: SigLIP's text
    clean-up before tokenizing (always done for ``spiece.model``).

    Raises:
        ModelNotFoundError: the file cannot be read as a tokenizer.
        MissingExtraError: ``spiece.model`` without the sentencepiece package.
    """
    if path.name.endswith(".txt.gz"):
        return openai_bpe(path, context_length)
    if path.suffix == ".model":
        return _sentencepiece(path, context_length, pad_to_context, spec)
    from tokenizers import Tokenizer

    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as e:  # tokenizers raises a bare Exception for a malformed file
        raise ModelNotFoundError(f"{spec}: {path} is not a readable tokenizer.json ({e})") from e
    if pad_id is None:
        token = configured_pad_token(path.parent)
        pad_id = tok.token_to_id(token) if token else None
    tok.no_padding()
    tok.no_truncation()
    clean = siglip_canonical if canonical == "siglip" else (lambda text: text)
    return TextTokenizer(lambda text: tok.encode(clean(text)).ids, context_length, pad_id or 0, pad_to_context,
                         _end_id(tok))


def _end_id(tok: Any) -> int | None:
    """The id a cut text must still end with (CLIP's ``<|endoftext|>``, SigLIP's ``</s>``), when the
    tokenizer's post-processor appends one."""
    with_specials, plain = tok.encode("x").ids, tok.encode("x", add_special_tokens=False).ids
    if len(with_specials) > len(plain) and (not plain or with_specials[-1] != plain[-1]):
        return int(with_specials[-1])
    return None


# OpenAI's word pattern: contractions, letter runs, single digits, runs of other non-space characters.
_OPENAI_WORDS = r"""<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


def _byte_alphabet() -> list[str]:
    """OpenAI's reversible byte -> printable character table, in its byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return [table[b] for b in [*printable, *(b for b in range(256) if b not in printable)]]


def openai_bpe(merges_gz: Path, context_length: int = 77) -> TextTokenizer:
    """OpenAI CLIP's BPE tokenizer from its merges file, on the ``tokenizers`` runtime (no ftfy, no torch)."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers

    tok = Tokenizer(_openai_bpe_model(merges_gz))
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "),
                                           normalizers.Strip(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_OPENAI_WORDS), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    start, end = tok.token_to_id("<start_of_text>"), tok.token_to_id("<end_of_text>")
    if start is None or end is None:
        raise ModelNotFoundError(f"{merges_gz}: not OpenAI's BPE merges file (no start/end tokens)")
    return TextTokenizer(lambda text: [start, *tok.encode(text, add_special_tokens=False).ids, end],
                         context_length, 0, True, end)


def _openai_bpe_model(merges_gz: Path) -> Any:
    """The BPE model of OpenAI's merges file. Its vocabulary and merges are written once, beside the other
    derived files, in the form the tokenizers library reads itself: 0.04 s to load instead of 0.11 s of
    Python parsing, which a one-shot command-line search pays every time."""
    from tokenizers import models

    from clipdex.encoders.cache import cache_path_for

    folder = cache_path_for(merges_gz, "bpe")
    vocab_file, merges_file = folder / "vocab.json", folder / "merges.txt"
    if vocab_file.is_file() and merges_file.is_file():
        try:
            return models.BPE.from_file(str(vocab_file), str(merges_file), end_of_word_suffix="</w>")
        except Exception:  # a damaged cache is rebuilt from the source  # noqa: BLE001
            pass
    lines = gzip.open(merges_gz, "rt", encoding="utf-8").read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1] if line.strip()]
    alphabet = _byte_alphabet()
    vocab_list = alphabet + [c + "</w>" for c in alphabet] + ["".join(m) for m in merges]
    vocab_list += ["<start_of_text>", "<end_of_text>"]
    vocab = {token: i for i, token in enumerate(vocab_list)}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = merges_file.with_suffix(".tmp")
        tmp.write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n", encoding="utf-8")
        os.replace(tmp, merges_file)
        tmp.write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, vocab_file)
    except OSError:
        pass  # a read-only cache only costs the next load its speed
    return models.BPE(vocab, [(a, b) for a, b in merges], end_of_word_suffix="</w>", unk_token=None)


_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}]")


def siglip_canonical(text: str) -> str:
    """SigLIP's text canonicalisation: punctuation removed, whitespace collapsed and stripped, lower case."""
    return " ".join(_PUNCTUATION.sub("", text).split()).lower()


def _sentencepiece(path: Path, context_length: int, pad_to_context: bool, spec: str) -> TextTokenizer:
    try:
        import sentencepiece
    except ImportError as e:
        raise MissingExtraError(f"{spec}: spiece.model needs the sentencepiece package: "
                                "pip install sentencepiece") from e
    sp = sentencepiece.SentencePieceProcessor(model_file=str(path))
    token = configured_pad_token(path.parent) or "</s>"
    pad_id = sp.piece_to_id(token)
    end = sp.eos_id() if sp.eos_id() >= 0 else sp.piece_to_id("</s>")
    return TextTokenizer(lambda text: [*sp.encode(siglip_canonical(text)), end], context_length, pad_id,
                         pad_to_context, end)
