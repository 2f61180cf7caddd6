"""The data checks of `char_rnn`: ``vocabulary`` (build_vocab gives a consistent stoi/itos,
encode gives int64 ids and decode(encode(text)) is the text again) and ``examples``
(make_examples cuts rows that are windows of the ids, with Y the rows of X moved on by one).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from autograder.sandbox.wire import describe
from autograder.toolkit.check import Check, Verdict
from autograder.toolkit.verdict import Mismatch, require_tensor, unpack, value_of

# ---- vocabulary --------------------------------------------------------------------------

VOCAB_TEXT = ("Call me Ishmael. Some years ago - never mind how long precisely -\n"
              "having little or no money in my purse,\tI thought I would sail about... "
              "Cafe, naive; 42 (or 7)? Yes! 'Q' & \"z\" ~ #1: ok.")


class Vocabulary(Check):
    name = "vocabulary"
    needs_reference = False

    def inputs(self, ctx):
        return {"text": VOCAB_TEXT}

    @staticmethod
    def probe(student, inputs, device):
        text = inputs["text"]
        built = student.attempt("build_vocab", text)
        if not built["ok"]:
            return {"build": built}
        pair = built["value"]
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            return {"build": built, "shape": describe(pair)}
        stoi, itos = pair
        result = {"build": {"ok": True, "value": None}, "stoi_type": type(stoi).__name__,
                  "itos_type": type(itos).__name__}
        if not isinstance(stoi, Mapping):
            return result
        result["stoi"] = [[str(key), value if isinstance(value, int) else describe(value)]
                          for key, value in stoi.items()]
        chars = student.call(lambda: [itos[index] for index in range(len(stoi))])
        result["itos"] = chars if not chars["ok"] else {"ok": True, "value": [str(c) for c in chars["value"]]}
        result["itos_len"] = len(itos) if hasattr(itos, "__len__") else None
        result["encode"] = student.attempt("encode", text, stoi)
        if result["encode"]["ok"] and isinstance(result["encode"]["value"], torch.Tensor):
            result["decode"] = student.attempt("decode", result["encode"]["value"], itos)
        return result

    def verdict(self, ctx, inputs, got, expected):
        text = inputs["text"]
        value_of(got["build"], "build_vocab(text)")
        if "shape" in got:
            raise Mismatch("build_vocab(text) should return a pair (stoi, itos)", expected="(stoi, itos)",
                           got=got["shape"])
        if "stoi" not in got:
            raise Mismatch("build_vocab(text): stoi should be a dict from character to id", expected="a dict",
                           got=f"an object of type {got['stoi_type']}")
        stoi = dict(got["stoi"])
        wanted = set(text)
        if set(stoi) != wanted:
            raise Mismatch("build_vocab(text): stoi should have one entry per distinct character of the text",
                           expected=f"{len(wanted)} characters",
                           got=f"{len(stoi)}; extra {sorted(set(stoi) - wanted)[:8]}, missing "
                               f"{sorted(wanted - set(stoi))[:8]}")
        V = len(wanted)
        if sorted(v if isinstance(v, int) else -1 for v in stoi.values()) != list(range(V)):
            raise Mismatch(f"build_vocab(text): the ids should be the ints 0 .. {V - 1}, each used once",
                           expected=f"0 .. {V - 1}", got=str(sorted(map(str, stoi.values())))[:120])
        chars = value_of(got["itos"], "itos[i] for i in range(len(stoi))")
        wrong = [char for char, index in stoi.items() if chars[index] != char]
        if wrong or got["itos_len"] != V:
            raise Mismatch("build_vocab(text): itos should be a list of the V characters with itos[stoi[c]] == c",
                           expected=f"a list of {V} characters, itos[stoi[c]] == c",
                           got=f"len(itos) = {got['itos_len']}" + (f"; itos[stoi[{wrong[0]!r}]] = "
                                                                   f"{chars[stoi[wrong[0]]]!r}" if wrong else ""))
        ids = require_tensor(value_of(got["encode"], "encode(text, stoi)"), "encode(text, stoi)")
        if ids.dtype != torch.int64:
            raise Mismatch("encode(text, stoi) should return int64 ids (a LongTensor), which nn.Embedding and "
                           "cross_entropy need", expected="torch.int64", got=str(ids.dtype))
        require_tensor(ids, "encode(text, stoi)", shape=(len(text),))
        right = torch.tensor([stoi[char] for char in text])
        if not torch.equal(ids, right):
            at = int((ids != right).nonzero()[0])
            raise Mismatch(f"encode(text, stoi): position {at} should be stoi[{text[at]!r}]",
                           expected=str(int(right[at])), got=str(int(ids[at])))
        decoded = value_of(got["decode"], "decode(encode(text, stoi), itos)")
        if decoded != text:
            at = next((i for i, (a, b) in enumerate(zip(decoded, text, strict=False)) if a != b),
                      min(len(decoded), len(text))) if isinstance(decoded, str) else 0
            raise Mismatch("decode(encode(text, stoi), itos) should give the text back, as one str",
                           expected=f"{text[max(at - 10, 0):at + 10]!r} around position {at}",
                           got=describe(decoded) if not isinstance(decoded, str) else
                           f"{decoded[max(at - 10, 0):at + 10]!r} (length {len(decoded)} instead of {len(text)})")
        return Verdict.ok(f"a {V}-character vocabulary with itos[stoi[c]] == c; encode gives {len(text)} int64 "
                          "ids and decode(encode(text)) is the text again")


# ---- make_examples ----------------------------------------------------------------------

class Examples(Check):
    """Every row of X followed by the last id of its row of Y is seq_len + 1 consecutive ids of
    the input, and Y is X moved on by one; any stride between rows is accepted (the spec's
    contract), so the rows are located, not compared with one layout."""

    name = "examples"
    needs_reference = False
    CASES = [(203, 8), (41, 5)]  # (number of ids, seq_len)

    def inputs(self, ctx):
        generator = ctx.generator()
        # ids drawn from 10000 values: every window of the sequence is unique, so each row can be located
        return {"cases": [{"ids": torch.randint(0, 10_000, (length,), generator=generator), "seq_len": seq_len}
                          for length, seq_len in self.CASES]}

    @staticmethod
    def probe(student, inputs, device):
        return [student.attempt("make_examples", case["ids"], case["seq_len"]) for case in inputs["cases"]]

    def verdict(self, ctx, inputs, got, expected):
        rows = []
        for case, record in zip(inputs["cases"], got, strict=True):
            rows.append(self.judge_case(case["ids"], case["seq_len"], record))
        return Verdict.ok(f"make_examples gives {rows[0]} rows of 8 ids from 203 ids and {rows[1]} rows of 5 from 41: "
                          "each row a window of the ids, Y = X shifted by one")

    @staticmethod
    def judge_case(ids: torch.Tensor, seq_len: int, record: dict) -> int:
        call = f"make_examples(ids of length {len(ids)}, seq_len={seq_len})"
        X, Y = unpack(value_of(record, call), 2, call)
        X, Y = require_tensor(X, f"X from {call}"), require_tensor(Y, f"Y from {call}")
        if X.dim() != 2 or X.shape[1] != seq_len or X.shape[0] < 1:
            raise Mismatch(f"X from {call} should have shape (N, seq_len) with N >= 1", expected=f"(N, {seq_len})",
                           got=f"shape {tuple(X.shape)}")
        require_tensor(Y, f"Y from {call}", shape=tuple(X.shape))
        for tensor, what in ((X, "X"), (Y, "Y")):
            if tensor.dtype != torch.int64:
                raise Mismatch(f"{what} from {call} should hold int64 ids (for nn.Embedding and cross_entropy)",
                               expected="torch.int64", got=str(tensor.dtype))
        for row in range(len(X)):
            if not torch.equal(Y[row, :-1], X[row, 1:]):
                hint = ("Y equals X: the targets are not shifted" if torch.equal(Y[row], X[row]) else
                        "Y is shifted the wrong way (Y[t] should come after X[t], not before)"
                        if torch.equal(Y[row, 1:], X[row, :-1]) else "Y[:, t] should equal X[:, t + 1]")
                raise Mismatch(f"{call}: row {row}: Y should be X moved one character on ({hint})",
                               expected=f"Y[{row}, :-1] == X[{row}, 1:]",
                               got=f"X[{row}, :4] = {X[row, :4].tolist()}, Y[{row}, :4] = {Y[row, :4].tolist()}")
        windows = {tuple(ids[i:i + seq_len + 1].tolist()) for i in range(len(ids) - seq_len)}
        for row in range(len(X)):
            if tuple(X[row].tolist()) + (int(Y[row, -1]),) not in windows:
                raise Mismatch(f"{call}: row {row} of X followed by Y[{row}, -1] is not {seq_len + 1} consecutive ids "
                               "of the input", expected="ids[s : s + seq_len + 1] for some s",
                               got=f"X[{row}] = {X[row].tolist()[:6]}..., Y[{row}, -1] = {int(Y[row, -1])}")
        return len(X)
