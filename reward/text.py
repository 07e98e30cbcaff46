"""Word-level tokenizers built locally, for the built-in text tower (no hub download).

The built-in tower reads words, not sub-words: questions are short and their vocabulary is small
(dimension words, colors, shapes, directions in the synthetic world). The tokenizer is a
`tokenizers` WordLevel model wrapped in `PreTrainedTokenizerFast`, so it saves next to the model
and `AutoTokenizer.from_pretrained(folder)` loads it back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from reward.dimensions import DEFAULT_QUESTION_TEMPLATE, DIMENSION_WORDS

__all__ = ["PAD_TOKEN", "UNK_TOKEN", "build_word_tokenizer"]

PAD_TOKEN = "[PAD]"
UNK_TOKEN = "[UNK]"
# Same split as the tokenizer's pre-tokenizer (`Whitespace`: runs of word characters or of punctuation).
_WORDS = re.compile(r"\w+|[^\w\s]+")


def build_word_tokenizer(
    texts: Iterable[str], template: str = DEFAULT_QUESTION_TEMPLATE, model_max_length: int = 64
) -> PreTrainedTokenizerFast:
    """A lower-casing word-level tokenizer whose vocabulary is every word of `texts`.

    The words of every dimension and of the question `template` are always included, so any
    dimension can be asked even when `texts` lack it. Unknown words map to `[UNK]`; `[PAD]` pads
    (id 0). Ids follow sorted word order, so the same texts always give the same tokenizer.
    """
    words = set(_WORDS.findall(template.replace("{dimension}", " ").replace("{prompt}", " ").lower()))
    for text in [*texts, *DIMENSION_WORDS.values()]:
        words.update(_WORDS.findall(text.lower()))
    vocab = {PAD_TOKEN: 0, UNK_TOKEN: 1}
    vocab.update({word: i for i, word in enumerate(sorted(words), start=len(vocab))})
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token=UNK_TOKEN))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
        model_max_length=model_max_length,
    )
