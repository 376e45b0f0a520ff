"""runtime/tokenizer.c against the `tokenizers` library on the generated
tokenizer.json: the same ids (with and without the template's <s>) for
Japanese, English, code, whitespace runs, emoji, special tokens and random
Unicode; decoding gives the text back."""
import json
import os
import random

import pytest
from tokenizers import Tokenizer

from conftest import TESTTOOL, run

TEXTS = [
    "", " ", "Hello", "Hello, world!", "  leading and trailing  ", "tabs\tand\nnew\r\nlines\n\n\n",
    "日本の首都は東京です。", "今日はいい天気ですね！明日も晴れるでしょうか？", "カタカナとひらがなと漢字、ＡＢＣ全角",
    "mixed 日本語 and English 123 456.78", "CamelCaseWords and snake_case_words", "def f(x):\n    return x**2  # comment\n",
    "<s>already special</s>", "<SPECIAL_11>User\nHello\n<SPECIAL_11>Assistant\n<think>\n", "/no_think 質問です",
    "emoji 😀🎉 and flags 🇯🇵", "accents: café naïve résumé", "Ελληνικά и русский", "    \n    indented",
    "a" * 300, "ー" * 50, "1234567890" * 5, "!!!???...,,,", "x<s>y", "<SPECIAL_999><unk>",
]


def random_texts(n, seed):
    rng = random.Random(seed)
    alphabet = "abcXYZ 日本語のテスト、。！？ \n\t\r0123456789<>/_-😀é\u0301\u3000ｱ①Ⅻ\u200b"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60))) for _ in range(n)]
    # any code point outside the surrogates, too
    texts += ["".join(chr(rng.choice([rng.randint(32, 0xD7FF), rng.randint(0xE000, 0x10FFFF)])) for _ in range(20))
              for _ in range(n // 4)]
    return texts


@pytest.fixture(scope="module")
def tok_path(tiny):
    return os.path.join(tiny, "tokenizer.json")


def ours(tok_path, texts, tmp_path):
    p = tmp_path / "texts.json"
    p.write_text(json.dumps(texts))
    return json.loads(run([TESTTOOL, "tokenize", tok_path, str(p)]).stdout)


@pytest.mark.parametrize("corpus", ["fixed", "random"])
def test_ids_equal_tokenizers(tok_path, tmp_path, corpus):
    texts = TEXTS if corpus == "fixed" else random_texts(2000, 11)
    ref = Tokenizer.from_file(tok_path)
    got = ours(tok_path, texts, tmp_path)
    for text, g in zip(texts, got):
        assert g["ids"] == ref.encode(text, add_special_tokens=False).ids, repr(text)
        assert g["ids_bos"] == ref.encode(text).ids, repr(text)
        assert g["decoded"] == text, repr(text)


def test_corpus_file(tok_path, tmp_path):
    """A longer document: the generator's own training corpus joined."""
    ref = Tokenizer.from_file(tok_path)
    text = "\n".join(TEXTS * 20)
    g = ours(tok_path, [text], tmp_path)[0]
    assert g["ids"] == ref.encode(text, add_special_tokens=False).ids
