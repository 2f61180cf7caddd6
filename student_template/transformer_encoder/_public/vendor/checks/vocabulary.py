"""Checks of `build_vocab` and `encode_batch`.

``vocabulary`` checks that the vocabulary holds '<PAD>' = 0 and exactly the lower-cased,
whitespace-split tokens with ids 0..n-1, and that encode_batch gives int64 (B, L_max) ids padded
with 0, looked up in the vocabulary it is given (its own and a grader-made one with shuffled ids).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from autograder.toolkit.check import Check, Verdict
from autograder.toolkit.verdict import Mismatch, require_tensor, value_of

SENTENCES = ["The cat sat on the mat", "the  dog ate\tThe CAT", "A bird", "  sat on a Mat  "]
MORE_SENTENCES = ["a bird sat", "MAT on the dog cat the"]


def tokens_of(sentence: str) -> list[str]:
    return sentence.lower().split()


def describe_vocab(vocab) -> dict:
    """Plain data about what build_vocab returned (a dict's items, keys as strings)."""
    if not isinstance(vocab, Mapping):
        return {"is_mapping": False, "type": type(vocab).__name__, "items": []}
    items = [[key if isinstance(key, str) else f"<non-string key {key!r}>",
              int(value) if isinstance(value, int) else f"<{type(value).__name__} {value!r}>"]
             for key, value in vocab.items()]
    return {"is_mapping": True, "type": type(vocab).__name__, "items": items}


class Vocabulary(Check):
    name = "vocabulary"
    needs_reference = False

    def inputs(self, ctx):
        # encode_batch is also called with a grader-made vocabulary whose ids are shuffled, so
        # it must look tokens up in the vocabulary it is given.
        words = list(dict.fromkeys(token for sentence in SENTENCES for token in tokens_of(sentence)))
        ids = (torch.randperm(len(words), generator=ctx.generator()) + 1).tolist()
        return {"sentences": SENTENCES, "more": MORE_SENTENCES,
                "shuffled_vocab": {"<PAD>": 0, **dict(zip(words, ids, strict=True))}}

    @staticmethod
    def probe(student, inputs, device):
        built = student.attempt("build_vocab", list(inputs["sentences"]))
        result = {"build": {"ok": built["ok"], "error": built.get("error"),
                            "vocab": describe_vocab(built["value"]) if built["ok"] else None}}
        own = built["value"] if built["ok"] and isinstance(built["value"], Mapping) else None
        result["encode_own"] = (student.attempt("encode_batch", list(inputs["sentences"]), own)
                                if own is not None else None)
        result["encode_given"] = student.attempt("encode_batch", list(inputs["more"]),
                                                 dict(inputs["shuffled_vocab"]))
        return result

    def verdict(self, ctx, inputs, got, expected):
        problems, passed = [], []
        for decide_part in (self.judge_vocab, self.judge_encode):
            try:
                passed.append(decide_part(inputs, got))
            except Mismatch as failure:
                problems.append(failure)
        if not problems:
            return Verdict.ok(" ".join(passed))
        right = 2 - len(problems)
        message = " Also: ".join(failure.message for failure in problems)
        return Verdict.partial(right, 2, (f"{passed[0]} But: " if passed else "") + message,
                               expected=problems[0].expected, got=problems[0].got)

    @staticmethod
    def judge_vocab(inputs, got) -> str:
        built = got["build"]
        call = "build_vocab(sentences)"
        if not built["ok"]:
            value_of(built, call)
        vocab = built["vocab"]
        if not vocab["is_mapping"]:
            raise Mismatch(f"{call} should return a dict {{token: id}}", expected="a dict",
                           got=f"an object of type {vocab['type']}")
        items = dict((key, value) for key, value in vocab["items"])
        odd = [f"{key!r}: {value}" for key, value in items.items() if not isinstance(value, int)
               or key.startswith("<non-string")]
        if odd:
            raise Mismatch(f"{call}: keys should be token strings and ids Python ints",
                           expected="{'<PAD>': 0, 'the': 1, ...}", got=", ".join(odd[:5]))
        if items.get("<PAD>") != 0:
            raise Mismatch(f"{call}: the padding token '<PAD>' must have id 0",
                           expected="'<PAD>': 0", got=f"'<PAD>': {items.get('<PAD>', 'missing')}")
        ids = sorted(items.values())
        if ids != list(range(len(items))):
            repeated = sorted({i for i in ids if ids.count(i) > 1})
            raise Mismatch(f"{call}: the ids should be 0, 1, ..., {len(items) - 1}, each used once"
                           + (f"; id(s) {repeated} are used more than once" if repeated else ""),
                           expected=f"ids 0..{len(items) - 1}", got=f"ids {ids}")
        words = {token for sentence in inputs["sentences"] for token in tokens_of(sentence)}
        missing = sorted(words - set(items))
        extra = sorted(set(items) - words - {"<PAD>"})
        if missing or extra:
            hints = []
            if any(key != key.lower() and key.lower() in words for key in extra):
                hints.append("lower-case each sentence before splitting")
            if any(key.startswith("<") and key.endswith(">") for key in extra):
                hints.append("'<PAD>' is the only special token")
            if any(key == "" or key != key.strip() for key in extra):
                hints.append("split with str.split() (no argument) so that runs of spaces and tabs separate tokens")
            hint = f" ({'; '.join(hints)})" if hints else ""
            raise Mismatch(f"{call}: the keys should be '<PAD>' and exactly the lower-cased, whitespace-split "
                           f"tokens of the sentences{hint}",
                           expected=f"'<PAD>' and {sorted(words)}",
                           got=f"missing {missing}, extra {extra}")
        return f"build_vocab: '<PAD>' = 0 and {len(words)} lower-cased tokens with ids 1..{len(words)}."

    @staticmethod
    def judge_encode(inputs, got) -> str:
        cases = [("encode_batch(sentences, vocab) with a shuffled vocabulary", inputs["more"],
                  inputs["shuffled_vocab"], got["encode_given"])]
        if got["encode_own"] is not None:
            own = dict((key, value) for key, value in got["build"]["vocab"]["items"])
            if all(token in own for sentence in inputs["sentences"] for token in tokens_of(sentence)):
                cases.append(("encode_batch(sentences, build_vocab(sentences))", inputs["sentences"], own,
                              got["encode_own"]))
        for call, sentences, vocab, record in cases:
            rows = [[vocab[token] for token in tokens_of(sentence)] for sentence in sentences]
            longest = max(len(row) for row in rows)
            right = torch.tensor([row + [0] * (longest - len(row)) for row in rows], dtype=torch.long)
            batch = require_tensor(value_of(record, call), call, shape=tuple(right.shape))
            require_tensor(batch, call, dtype=torch.long)
            if not torch.equal(batch, right):
                row = int((batch != right).any(dim=1).nonzero()[0])
                raise Mismatch(f"{call}: row {row} ({sentences[row]!r}) should hold the ids of its lower-cased "
                               "tokens, then 0 up to the longest sentence's length",
                               expected=str(right[row].tolist()), got=str(batch[row].tolist()))
        return (f"encode_batch: {len(cases)} batches give int64 (B, L_max) ids padded with 0, looked up "
                "in the vocabulary passed in.")
