"""A word-level ``tokenizers`` tokenizer for small closed-vocabulary models."""

from __future__ import annotations

from typing import Any

__all__ = ["PAD", "build_word_tokenizer"]

PAD, UNK, BOS, EOS = "[PAD]", "[UNK]", "[BOS]", "[EOS]"


def build_word_tokenizer(words: list[str]) -> Any:
    """Lower-cased words split on whitespace and punctuation, wrapped in BOS/EOS.

    Ids 0-3 are ``[PAD] [UNK] [BOS] [EOS]``; unknown words map to ``[UNK]``.
    """
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel

    vocab = {tok: i for i, tok in enumerate([PAD, UNK, BOS, EOS])}
    for word in sorted(set(words)):
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(WordLevel(vocab, unk_token=UNK))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation()])
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}", special_tokens=[(BOS, vocab[BOS]), (EOS, vocab[EOS])]
    )
    return tok
