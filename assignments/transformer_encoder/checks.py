"""Visible checks of the `transformer_encoder` assignment (these also ship to students).

Each check: ``inputs`` (grader, seeded) -> ``probe`` (worker, calls the student) ->
``verdict`` (grader). No check needs the reference solution: every verdict decides from
properties (shapes, normalisation, equivariance, padding) or from an oracle it computes
itself in the grading process (`torch.nn.MultiheadAttention` loaded with the grader's
weights, the positional-encoding formula in float64).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from autograder.toolkit.check import Check, NoForbiddenCalls, Verdict
from autograder.toolkit.figures import figure_data, png_bytes, require_figure, require_heatmap
from autograder.toolkit.probe import ContractError, build_module
from autograder.toolkit.verdict import (
    Mismatch,
    max_abs_error,
    require_close,
    require_finite,
    require_tensor,
    unpack,
    value_of,
    within_tolerance,
)

MHA = "MultiHeadSelfAttention"
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "out_proj")
LAYER_PARTS = ("self_attn", "feed_forward", "norm1", "norm2")


# ---- probe side: calling the student's code --------------------------------------------

def part(module, name: str, owner: str, contract: str):
    """``module.name``, or a ContractError naming the attribute the handout fixes."""
    found = getattr(module, name, None)
    if found is None:
        children = ", ".join(child for child, _ in module.named_children()) or "none"
        raise ContractError(f"{owner} has no attribute `{name}`; the handout fixes {contract}, and the "
                            "grader uses these names", expected=f"attribute `{name}`",
                            got=f"sub-modules: {children}")
    return found


def projection(mha, name: str, d_model: int):
    """One of q_proj, k_proj, v_proj, out_proj with a (d, d) weight and a (d,) bias."""
    contract = "four nn.Linear(d_model, d_model) layers q_proj, k_proj, v_proj, out_proj (bias on)"
    layer = part(mha, name, f"{MHA}({d_model}, ...)", contract)
    weight, bias = getattr(layer, "weight", None), getattr(layer, "bias", None)
    if not isinstance(weight, torch.Tensor) or tuple(weight.shape) != (d_model, d_model):
        shape = tuple(weight.shape) if isinstance(weight, torch.Tensor) else None
        raise ContractError(f"`{name}` should be nn.Linear(d_model, d_model) with d_model = {d_model}",
                            expected=f"{name}.weight of shape {(d_model, d_model)}", got=f"{name}.weight {shape}")
    if not isinstance(bias, torch.Tensor) or tuple(bias.shape) != (d_model,):
        raise ContractError(f"`{name}` has no bias; create it with nn.Linear(d_model, d_model), whose "
                            "bias is on by default", expected=f"{name}.bias of shape ({d_model},)",
                            got="no bias" if bias is None else f"bias {tuple(bias.shape)}")
    return layer


def load_mha_weights(mha, weights: dict, d_model: int) -> None:
    """Copy the grader's nn.MultiheadAttention-layout weights into the four projections."""
    with torch.no_grad():
        for index, name in enumerate(PROJECTIONS[:3]):
            layer = projection(mha, name, d_model)
            rows = slice(index * d_model, (index + 1) * d_model)
            layer.weight.copy_(weights["in_proj_weight"][rows])
            layer.bias.copy_(weights["in_proj_bias"][rows])
        layer = projection(mha, "out_proj", d_model)
        layer.weight.copy_(weights["out_proj_weight"])
        layer.bias.copy_(weights["out_proj_bias"])


# ---- grader side: inputs and verdict helpers -------------------------------------------

def randn(generator, *shape) -> torch.Tensor:
    return torch.randn(*shape, generator=generator, dtype=torch.float64).to(torch.float32)


def padding_mask(lengths: list[int], length: int) -> torch.Tensor:
    """(B, L) bool, True at the padded positions of sentences with the given lengths."""
    return torch.arange(length)[None, :] >= torch.tensor(lengths)[:, None]


def random_tokens(generator, lengths: list[int], length: int, low: int, high: int, pad: int) -> torch.Tensor:
    """(B, L) ids drawn from [low, high) (never ``pad``), padded with ``pad`` after each length."""
    tokens = torch.randint(low, high, (len(lengths), length), generator=generator)
    tokens = torch.where(tokens == pad, torch.full_like(tokens, high - 1 if pad != high - 1 else low), tokens)
    return tokens.masked_fill(padding_mask(lengths, length), pad)


def mha_weights(generator, d_model: int) -> dict:
    """Weights in torch.nn.MultiheadAttention's layout, scaled so that the scores vary by ~1."""
    scale = d_model ** -0.5
    return {"in_proj_weight": randn(generator, 3 * d_model, d_model) * scale,
            "in_proj_bias": randn(generator, 3 * d_model) * 0.3,
            "out_proj_weight": randn(generator, d_model, d_model) * scale,
            "out_proj_bias": randn(generator, d_model) * 0.3}


def shape_text(tensor: torch.Tensor) -> str:
    return str(tuple(tensor.shape))


# ---- positional encoding ---------------------------------------------------------------

def encoding(seq_len: int, d_model: int, variant: str = "right") -> torch.Tensor:
    """The sinusoidal encoding in float64, or a common mistake (for hints)."""
    position = torch.arange(seq_len, dtype=torch.float64)[:, None]
    column = torch.arange(d_model, dtype=torch.float64)
    if variant == "position from 1":
        position = position + 1
    pair = column if variant == "exponent j / d_model for column j" else 2 * torch.div(column, 2, rounding_mode="floor")
    angles = position / torch.pow(10000.0, pair / d_model)
    even = (torch.arange(d_model) % 2 == 0)[None, :]
    if variant == "sin and cos swapped":
        return torch.where(even, torch.cos(angles), torch.sin(angles))
    if variant == "sin in the first half of the columns, cos in the second half":
        half = d_model // 2
        frequencies = position / torch.pow(10000.0, 2 * torch.arange(half, dtype=torch.float64) / d_model)
        return torch.cat([torch.sin(frequencies), torch.cos(frequencies)], dim=1)
    return torch.where(even, torch.sin(angles), torch.cos(angles))


PE_VARIANTS = ("sin and cos swapped", "exponent j / d_model for column j", "position from 1",
               "sin in the first half of the columns, cos in the second half")


class PositionalEncoding(Check):
    name = "positional_encoding"
    needs_reference = False
    SIZES = [(1, 2), (10, 16), (50, 64), (7, 6), (33, 128)]

    def inputs(self, ctx):
        return {"sizes": self.SIZES}

    @staticmethod
    def probe(student, inputs, device):
        return [student.attempt("sinusoidal_positional_encoding", seq_len, d_model)
                for seq_len, d_model in inputs["sizes"]]

    def verdict(self, ctx, inputs, got, expected):
        atol, worst = ctx.threshold("pe_atol"), 0.0
        for (seq_len, d_model), record in zip(inputs["sizes"], got, strict=True):
            call = f"sinusoidal_positional_encoding({seq_len}, {d_model})"
            pe = require_tensor(value_of(record, call), call, shape=(seq_len, d_model))
            require_tensor(pe, f"{call} (used as a float32 buffer beside float32 embeddings)",
                           dtype=torch.float32)
            require_finite(pe, call)
            right = encoding(seq_len, d_model)
            if not within_tolerance(pe, right, atol, 0.0):
                error = (pe.to(torch.float64) - right).abs()
                position, column = divmod(int(error.argmax()), d_model)
                hint = next((f"; your values equal the encoding with {variant}" for variant in PE_VARIANTS
                             if within_tolerance(pe, encoding(seq_len, d_model, variant), atol, 0.0)), "")
                raise Mismatch(f"{call} differs from sin/cos(pos / 10000^(2i/d_model)) in columns 2i/2i+1: "
                               f"max abs error {error.max().item():.3g} (tolerance {atol:g}), worst at "
                               f"position {position}, column {column}{hint}",
                               expected=f"{right[position, column].item():.6g} at ({position}, {column})",
                               got=f"{pe[position, column].item():.6g}")
            worst = max(worst, max_abs_error(pe, right))
        return Verdict.ok(f"{len(inputs['sizes'])} sizes (up to 33 x 128) match the formula, float32 "
                          f"(max abs error {worst:.2g}, tolerance {atol:g})")


# ---- vocabulary ------------------------------------------------------------------------

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


# ---- multi-head attention --------------------------------------------------------------

class MhaShapes(Check):
    name = "mha_shapes"
    needs_reference = False
    CONFIGS = {  # label: (B, L, d_model, num_heads, lengths or None)
        "B=2, L=5, d_model=16, 4 heads": (2, 5, 16, 4, None),
        "B=3, L=7, d_model=24, 3 heads, padding": (3, 7, 24, 3, [7, 4, 2]),
        "B=1, L=1, d_model=8, 1 head": (1, 1, 8, 1, None),
        "B=2, L=6, d_model=32, 8 heads, padding": (2, 6, 32, 8, [3, 6]),
    }

    def inputs(self, ctx):
        generator = ctx.generator()
        cases = []
        for label, (batch, length, d_model, heads, lengths) in self.CONFIGS.items():
            mask = padding_mask(lengths, length) if lengths else None
            cases.append({"label": label, "x": randn(generator, batch, length, d_model), "num_heads": heads,
                          "mask": mask})
        return {"cases": cases}

    @staticmethod
    def probe(student, inputs, device):
        def run(case):
            x = case["x"]
            with torch.no_grad():
                return build_module(student, device, MHA, x.shape[-1], case["num_heads"])(x, case["mask"])
        return [student.call(run, case) for case in inputs["cases"]]

    def verdict(self, ctx, inputs, got, expected):
        problems = []
        for case, record in zip(inputs["cases"], got, strict=True):
            batch, length, d_model, heads, _ = self.CONFIGS[case["label"]]
            label = f"{MHA}({d_model}, {heads}) on x {(batch, length, d_model)}"
            try:
                out, weights = unpack(value_of(record, label), 2, f"{label}: forward")
                require_tensor(out, f"out of {label}", shape=(batch, length, d_model))
                require_tensor(weights, f"weights of {label}", shape=(batch, heads, length, length))
            except Mismatch as failure:
                problems.append(failure)
        total, right = len(inputs["cases"]), len(inputs["cases"]) - len(problems)
        if not problems:
            return Verdict.ok(f"all {total} configurations give out (B, L, d_model) and weights (B, num_heads, L, L)")
        first = problems[0]
        return Verdict.partial(right, total, f"{right} of {total} configurations right; first problem: "
                               f"{first.message}", expected=first.expected, got=first.got)


def pytorch_mha(weights: dict, x: torch.Tensor, mask, num_heads: int):
    """The oracle, in the grading process: torch.nn.MultiheadAttention (float64) with the
    grader's weights. Returns (out, per-head weights, head-averaged weights)."""
    d_model = x.shape[-1]
    with torch.random.fork_rng(devices=[]):  # its own init must not move the grader's RNG
        oracle = torch.nn.MultiheadAttention(d_model, num_heads, dropout=0.0, batch_first=True,
                                             dtype=torch.float64)
    oracle.eval()
    with torch.no_grad():
        oracle.in_proj_weight.copy_(weights["in_proj_weight"])
        oracle.in_proj_bias.copy_(weights["in_proj_bias"])
        oracle.out_proj.weight.copy_(weights["out_proj_weight"])
        oracle.out_proj.bias.copy_(weights["out_proj_bias"])
        x64 = x.to(torch.float64)
        out, per_head = oracle(x64, x64, x64, key_padding_mask=mask, need_weights=True, average_attn_weights=False)
        _, averaged = oracle(x64, x64, x64, key_padding_mask=mask, need_weights=True, average_attn_weights=True)
    return out, per_head, averaged


MHA_MISTAKES = ("scores divided by sqrt(d_model) instead of sqrt(d_head)", "scores not scaled at all",
                "heads split with view(B, num_heads, L, d_head) (no transpose)", "the padding mask ignored",
                "the softmax over the queries instead of the keys")


def mistaken_weights(weights: dict, x: torch.Tensor, mask, num_heads: int, mistake: str) -> torch.Tensor:
    """Per-head attention weights (float64) as a common mistake computes them (for hints)."""
    x = x.to(torch.float64)
    batch, length, d_model = x.shape
    d_head = d_model // num_heads
    w, b = weights["in_proj_weight"].to(torch.float64), weights["in_proj_bias"].to(torch.float64)

    def heads(index):
        projected = x @ w[index * d_model:(index + 1) * d_model].T + b[index * d_model:(index + 1) * d_model]
        if mistake.startswith("heads split"):
            return projected.reshape(batch, num_heads, length, d_head)
        return projected.view(batch, length, num_heads, d_head).transpose(1, 2)

    scale = {"scores divided by sqrt(d_model) instead of sqrt(d_head)": math.sqrt(d_model),
             "scores not scaled at all": 1.0}.get(mistake, math.sqrt(d_head))
    scores = heads(0) @ heads(1).transpose(-2, -1) / scale
    if mask is not None and mistake != "the padding mask ignored":
        scores = scores.masked_fill(mask[:, None, None, :], float("-inf"))
    return torch.softmax(scores, dim=-2 if mistake.startswith("the softmax over the queries") else -1)


class MhaMatchesPytorch(Check):
    """The student's module with the grader's weights copied in, against the oracle that the
    verdict computes itself (nothing of the oracle runs in the student's process)."""

    name = "mha_matches_pytorch"
    needs_reference = False
    CONFIGS = [  # (label, B, L, d_model, num_heads, lengths or None)
        ("d_model=16, 4 heads, no padding", 2, 5, 16, 4, None),
        ("d_model=16, 4 heads, key_padding_mask", 3, 6, 16, 4, [6, 4, 2]),
        ("d_model=24, 3 heads, key_padding_mask", 2, 7, 24, 3, [5, 7]),
    ]

    def inputs(self, ctx):
        generator = ctx.generator()
        cases = []
        for label, batch, length, d_model, heads, lengths in self.CONFIGS:
            cases.append({"label": label, "num_heads": heads, "weights": mha_weights(generator, d_model),
                          "x": randn(generator, batch, length, d_model),
                          "mask": padding_mask(lengths, length) if lengths else None})
        return {"cases": cases}

    @staticmethod
    def probe(student, inputs, device):
        def run(case):
            x = case["x"]
            module = build_module(student, device, MHA, x.shape[-1], case["num_heads"])
            load_mha_weights(module, case["weights"], x.shape[-1])
            module.eval()
            with torch.no_grad():
                return module(x, key_padding_mask=case["mask"])
        return [student.call(run, case) for case in inputs["cases"]]

    def verdict(self, ctx, inputs, got, expected):
        atol, rtol = ctx.threshold("atol_float32"), ctx.threshold("rtol_float32")
        worst = {"out": 0.0, "per-head weights": 0.0, "head-averaged weights": 0.0}
        for case, record in zip(inputs["cases"], got, strict=True):
            x, heads = case["x"], case["num_heads"]
            batch, length, d_model = x.shape
            label = f"{MHA}({d_model}, {heads}) with the grader's weights, x {shape_text(x)}, {case['label']}"
            out, weights = unpack(value_of(record, label), 2, f"{label}: forward")
            require_tensor(out, f"out ({label})", shape=(batch, length, d_model))
            require_tensor(weights, f"weights ({label})", shape=(batch, heads, length, length))
            require_finite(out, f"out ({label})")
            require_finite(weights, f"weights ({label})")
            right_out, right_weights, right_average = pytorch_mha(case["weights"], x, case["mask"], heads)
            pairs = {"out": (out, right_out), "per-head weights": (weights, right_weights),
                     "head-averaged weights": (weights.mean(dim=1), right_average)}
            errors = {what: max_abs_error(mine, right) for what, (mine, right) in pairs.items()}
            good = {what: within_tolerance(mine, right, atol, rtol) for what, (mine, right) in pairs.items()}
            report = ", ".join(f"{what} {error:.3g}" for what, error in errors.items())
            if not all(good.values()):
                raise Mismatch(f"{label}: differs from torch.nn.MultiheadAttention(batch_first=True) loaded with "
                               f"the same weights: max abs error {report} (tolerance {atol:g} + "
                               f"{rtol:g}·|expected|){self.hint(case, weights, good)}",
                               expected=f"max abs error <= {atol:g} + {rtol:g}·|expected|",
                               got=f"max abs error {report}")
            worst = {what: max(worst[what], errors[what]) for what in worst}
        return Verdict.ok(f"{len(inputs['cases'])} cases (d_model 16 and 24, with and without padding) match "
                          f"torch.nn.MultiheadAttention: max abs error "
                          + ", ".join(f"{what} {error:.2g}" for what, error in worst.items()))

    @staticmethod
    def hint(case: dict, weights: torch.Tensor, good: dict) -> str:
        if good["per-head weights"]:
            return ("; the weights are right, so look after the softmax: weights @ v, merging the heads with "
                    "transpose(1, 2).reshape(B, L, d_model), then out_proj")
        for mistake in MHA_MISTAKES:
            if mistake == "the padding mask ignored" and case["mask"] is None:
                continue
            if within_tolerance(weights, mistaken_weights(case["weights"], case["x"], case["mask"], case["num_heads"],
                                               mistake), 1e-4, 1e-3):
                return f"; your weights are what you get with {mistake}"
        if good["head-averaged weights"]:
            return ("; the average over the heads is right but the heads are not: split with "
                    "view(B, L, num_heads, d_head).transpose(1, 2)")
        return ("; check that q_proj/k_proj/v_proj make the queries/keys/values, the head split "
                "view(B, L, num_heads, d_head).transpose(1, 2), and the 1/sqrt(d_head) scaling")


class PaddingMask(Check):
    name = "padding_mask"
    needs_reference = False
    LENGTHS = [6, 3, 1]

    def inputs(self, ctx):
        generator = ctx.generator()
        x = randn(generator, 3, 6, 16)
        mask = padding_mask(self.LENGTHS, 6)
        noise = 1e3 * randn(ctx.generator("noise"), 3, 6, 16)
        return {"x": x, "mask": mask, "num_heads": 2, "lengths": self.LENGTHS,
                "disturbed": torch.where(mask[..., None], noise, x)}

    @staticmethod
    def probe(student, inputs, device):
        def run():
            x, mask = inputs["x"], inputs["mask"]
            module = build_module(student, device, MHA, x.shape[-1], inputs["num_heads"]).eval()
            with torch.no_grad():
                return {"padded": module(x, key_padding_mask=mask),
                        "disturbed": module(inputs["disturbed"], key_padding_mask=mask),
                        "alone": [module(x[b:b + 1, :n]) for b, n in enumerate(inputs["lengths"])]}
        return student.call(run)

    def verdict(self, ctx, inputs, got, expected):
        atol, rtol = ctx.threshold("atol_float32"), ctx.threshold("rtol_float32")
        x, mask, heads = inputs["x"], inputs["mask"], inputs["num_heads"]
        label = f"{MHA}(16, {heads}) on x {shape_text(x)} with sentence lengths {inputs['lengths']}"
        value = value_of(got, label)
        out, weights = unpack(value["padded"], 2, f"{label}: forward")
        require_tensor(out, f"out ({label})", shape=tuple(x.shape))
        require_tensor(weights, f"weights ({label})", shape=(3, heads, 6, 6))
        require_finite(weights, f"weights ({label}), padded query rows included")
        require_finite(out, f"out ({label}), padded query rows included")
        leaked = weights.masked_select(mask[:, None, None, :].expand_as(weights))
        if (leaked != 0).any():
            raise Mismatch(f"{label}: padded keys get non-zero weight; every weight on a key where "
                           "key_padding_mask is True must be exactly 0 (masked_fill the scores before the "
                           "softmax; True means padding)", expected="0 on every padded key",
                           got=f"{int((leaked != 0).sum())} of {leaked.numel()} non-zero, largest "
                               f"{leaked.abs().max().item():.3g}")
        disturbed, _ = unpack(value["disturbed"], 2, f"{label}: forward")
        require_tensor(disturbed, f"out ({label}, padded positions replaced)", shape=tuple(x.shape))
        real = ~mask
        change = max_abs_error(disturbed[real], out[real])
        if not change <= atol:
            raise Mismatch(f"{label}: replacing the padded positions of x by large numbers changed the outputs "
                           "of the real tokens; nothing behind the padding may reach them",
                           expected="the same outputs at real tokens", got=f"changed by up to {change:.3g}")
        for b, n in enumerate(inputs["lengths"]):
            alone_out, alone_weights = unpack(value["alone"][b], 2, f"{label}: forward")
            what = f"sentence {b} (length {n}) in the padded batch vs alone without padding"
            require_tensor(alone_out, f"out of {MHA} on x[{b}:{b + 1}, :{n}]", shape=(1, n, x.shape[-1]))
            require_tensor(alone_weights, f"weights of {MHA} on x[{b}:{b + 1}, :{n}]", shape=(1, heads, n, n))
            try:
                require_close(out[b, :n], alone_out[0], f"out of {what}", atol=atol, rtol=rtol)
                require_close(weights[b, :, :n, :n], alone_weights[0], f"weights of {what}", atol=atol, rtol=rtol)
            except Mismatch as failure:
                raise Mismatch(f"{failure.message}. A sentence's results must not depend on the padding after it: "
                               "mask the padded keys, and split the heads with view(B, L, num_heads, d_head)"
                               ".transpose(1, 2) so that no head mixes positions", expected=failure.expected,
                               got=failure.got) from None
        return Verdict.ok("padded keys get weight exactly 0, no NaN in padded rows, values behind the padding "
                          "do not matter, and each sentence gives the same result alone as in the padded batch")


# ---- encoder layer ---------------------------------------------------------------------

class AddAndNorm(Check):
    name = "add_and_norm"
    needs_reference = False

    def inputs(self, ctx):
        return {"x": 3.0 * randn(ctx.generator(), 2, 5, 16) + 2.0}

    @staticmethod
    def probe(student, inputs, device):
        def run():
            layer = build_module(student, device, "EncoderLayer", 16, 4, 32, 0.0).eval()
            with torch.no_grad():
                return layer(inputs["x"])
        return student.call(run)

    def verdict(self, ctx, inputs, got, expected):
        label = "EncoderLayer(16, 4, 32, dropout=0.0) on x (2, 5, 16) with mean 2 and std 3"
        out, _ = unpack(value_of(got, label), 2, f"{label}: forward")
        require_tensor(out, f"out ({label})", shape=(2, 5, 16))
        require_finite(out, f"out ({label})")
        out = out.to(torch.float64)
        mean, variance = out.mean(-1), out.var(-1, unbiased=False)
        mean_tol, var_tol = ctx.threshold("norm_mean_tol"), ctx.threshold("norm_var_tol")
        if mean.abs().max() > mean_tol or (variance - 1).abs().max() > var_tol:
            raise Mismatch(f"{label}: each token's output should be normalised (mean 0, variance 1 over its "
                           "16 features, with LayerNorm's default weight 1 and bias 0). In a post-norm layer the "
                           "last step is norm2(h + feed_forward(h)); a pre-norm layer (x + sublayer(norm(x))) "
                           "does not end with a LayerNorm",
                           expected=f"|mean| <= {mean_tol:g}, |variance - 1| <= {var_tol:g} per token",
                           got=f"mean from {mean.min().item():.3g} to {mean.max().item():.3g}, variance from "
                               f"{variance.min().item():.3g} to {variance.max().item():.3g}")
        return Verdict.ok(f"every token of the output has mean 0 and variance 1 (max |mean| "
                          f"{mean.abs().max().item():.1g}, max |variance - 1| {(variance - 1).abs().max().item():.1g})")


LAYER_CONTRACT = ("the sub-modules self_attn (MultiHeadSelfAttention), feed_forward (FeedForward), "
                  "norm1 and norm2 (nn.LayerNorm) and dropout")


class EncoderLayerStructure(Check):
    """The layer's output against its own sub-modules composed as the handout says. Hooks
    record what feed_forward received, which tells the attention sub-layer from the
    feed-forward one; the LayerNorms get distinct affine parameters so that norm1 and norm2
    cannot stand in for each other."""

    name = "encoder_layer_structure"
    needs_reference = False
    D, HEADS, D_FF = 16, 4, 32

    def inputs(self, ctx):
        generator = ctx.generator()
        norms = {f"{name}.{kind}": (1.0 if kind == "weight" else 0.0) + 0.3 * randn(generator, self.D)
                 for name in ("norm1", "norm2") for kind in ("weight", "bias")}
        x = randn(generator, 2, 6, self.D)
        return {"cases": [{"label": "without padding", "x": x, "mask": None},
                          {"label": "with a key_padding_mask (lengths 6 and 3)", "x": x,
                           "mask": padding_mask([6, 3], 6)}],
                "norms": norms}

    @staticmethod
    def probe(student, inputs, device):
        cls = EncoderLayerStructure

        def run(case):
            x, mask = case["x"], case["mask"]
            layer = build_module(student, device, "EncoderLayer", cls.D, cls.HEADS, cls.D_FF, 0.0).eval()
            parts = {name: part(layer, name, "EncoderLayer", LAYER_CONTRACT) for name in LAYER_PARTS}
            with torch.no_grad():
                for key, value in inputs["norms"].items():
                    norm, kind = key.split(".")
                    tensor = getattr(parts[norm], kind, None)
                    if isinstance(tensor, torch.Tensor) and tuple(tensor.shape) == tuple(value.shape):
                        tensor.copy_(value)
            seen = {}

            def attn_hook(module, args, kwargs, output):
                given = args[1] if len(args) > 1 else kwargs.get("key_padding_mask")
                seen.setdefault("attn_mask_given", given is not None)

            def ff_hook(module, args, kwargs, output):
                given = args[0] if args else next(iter(kwargs.values()), None)
                seen.setdefault("ff_input", given.detach().clone() if isinstance(given, torch.Tensor) else None)

            handles = [parts["self_attn"].register_forward_hook(attn_hook, with_kwargs=True),
                       parts["feed_forward"].register_forward_hook(ff_hook, with_kwargs=True)]
            try:
                with torch.no_grad():
                    layer_out = layer(x, key_padding_mask=mask)
            finally:
                for handle in handles:
                    handle.remove()
            attn, norm1, norm2, ff = (parts[name] for name in ("self_attn", "norm1", "norm2", "feed_forward"))
            with torch.no_grad():
                attended, attn_weights = attn(x, key_padding_mask=mask)
                h = norm1(x + attended)
                pre_h = x + attn(norm1(x), key_padding_mask=mask)[0]
                ff_inputs = {  # what feed_forward receives in common mistakes
                    "norm1(self_attn(x)[0]), without the residual x": norm1(attended),
                    "x + self_attn(x)[0], without norm1": x + attended,
                    "norm2(x + self_attn(norm1(x))[0]), a pre-norm layer": norm2(pre_h),
                    "norm1(x + self_attn(x)[0]) computed without the key_padding_mask":
                        norm1(x + attn(x)[0]),
                }
                ff_h = ff(h)
                outputs = {  # the layer's output in common mistakes of the second sub-layer
                    "norm2(feed_forward(h)), without the residual h": norm2(ff_h),
                    "h + feed_forward(h), without norm2": h + ff_h,
                    "norm2(x + feed_forward(h)), the residual taken from x instead of h": norm2(x + ff_h),
                    "norm1(h + feed_forward(h)), norm1 used twice": norm1(h + ff_h),
                }
            return {"layer": layer_out, "expected": norm2(h + ff_h), "h": h, "attn_weights": attn_weights,
                    "ff_input": seen.get("ff_input"), "attn_mask_given": seen.get("attn_mask_given"),
                    "ff_inputs": ff_inputs, "outputs": outputs}

        return [student.call(run, case) for case in inputs["cases"]]

    def verdict(self, ctx, inputs, got, expected):
        atol, rtol = ctx.threshold("encoder_atol"), ctx.threshold("encoder_rtol")
        for case, record in zip(inputs["cases"], got, strict=True):
            label = f"EncoderLayer(16, 4, 32, dropout=0.0) in eval mode, {case['label']}"
            value = value_of(record, label)
            out, weights = unpack(value["layer"], 2, f"{label}: forward")
            right = value["expected"]
            require_tensor(out, f"out ({label})", shape=tuple(case["x"].shape))
            require_tensor(weights, f"weights ({label})", shape=(2, self.HEADS, 6, 6))
            if not within_tolerance(out, right, atol, rtol):
                self.explain(label, case, value, out, right, atol, rtol)
            if not within_tolerance(weights, value["attn_weights"], atol, rtol):
                raise Mismatch(f"{label}: the returned weights should be the ones self_attn returned",
                               expected="self_attn(x, key_padding_mask)[1]",
                               got=f"max abs difference {max_abs_error(weights, value['attn_weights']):.3g}")
        return Verdict.ok("with and without padding, the layer equals norm2(h + feed_forward(h)) with "
                          "h = norm1(x + self_attn(x)[0]), built from your own sub-modules, and returns the "
                          "attention weights")

    @staticmethod
    def explain(label, case, value, out, right, atol, rtol):
        error = f"max abs error {max_abs_error(out, right):.3g}"
        expected = "norm2(h + feed_forward(h)), h = norm1(x + self_attn(x, key_padding_mask)[0])"
        if case["mask"] is not None and value["attn_mask_given"] is False:
            raise Mismatch(f"{label}: the key_padding_mask is not passed on to self_attn, so padded tokens "
                           "are attended to", expected="self_attn(x, key_padding_mask)",
                           got=f"self_attn called without a mask ({error})")
        ff_input = value["ff_input"]
        if ff_input is None:
            raise Mismatch(f"{label}: forward never calls self.feed_forward; the second sub-layer is "
                           "norm2(h + feed_forward(h))", expected=expected, got=f"feed_forward not called ({error})")
        if within_tolerance(ff_input, value["h"], atol, rtol):
            match = next((f"; yours equals {name}" for name, tensor in value["outputs"].items()
                          if within_tolerance(out, tensor, atol, rtol)), "")
            raise Mismatch(f"{label}: the attention sub-layer is right (feed_forward receives "
                           f"h = norm1(x + self_attn(x)[0])) but the feed-forward sub-layer is not: the "
                           f"output should be norm2(h + feed_forward(h)){match}",
                           expected="norm2(h + feed_forward(h))", got=error)
        match = next((f"; it receives {name}" for name, tensor in value["ff_inputs"].items()
                      if within_tolerance(ff_input, tensor, atol, rtol)), "")
        raise Mismatch(f"{label}: the attention sub-layer is wrong: feed_forward should receive "
                       f"h = norm1(x + dropout(self_attn(x, key_padding_mask)[0])){match}",
                       expected=expected, got=f"{error} in the output")


def encoder_stack(student, device, count: int):
    layers = [build_module(student, device, "EncoderLayer", 16, 4, 32, 0.0).eval() for _ in range(count)]

    def run(x, mask=None):
        weights = []
        for layer in layers:
            x, w = layer(x, key_padding_mask=mask)
            weights.append(w)
        return x, weights

    return run


class PermutationEquivariance(Check):
    name = "permutation_equivariance"
    needs_reference = False

    def inputs(self, ctx):
        generator = ctx.generator()
        perms = []
        while len(perms) < ctx.budget("permutations"):
            perm = torch.randperm(7, generator=generator)
            if not torch.equal(perm, torch.arange(7)):
                perms.append(perm)
        return {"x": randn(generator, 2, 7, 16), "perms": perms}

    @staticmethod
    def probe(student, inputs, device):
        def run():
            stack = encoder_stack(student, device, 2)
            x = inputs["x"]
            with torch.no_grad():
                return {"plain": stack(x), "permuted": [stack(x[:, perm]) for perm in inputs["perms"]]}
        return student.call(run)

    def verdict(self, ctx, inputs, got, expected):
        atol, rtol = ctx.threshold("encoder_atol"), ctx.threshold("encoder_rtol")
        label = "two EncoderLayer(16, 4, 32) applied in turn to x (2, 7, 16)"
        value = value_of(got, label)
        out, weights = unpack(value["plain"], 2, f"{label}: forward")
        require_tensor(out, f"out ({label})", shape=(2, 7, 16))
        hint = ("; nothing inside EncoderLayer may depend on the position index: no positional encoding "
                "there, and split the heads with view(B, L, num_heads, d_head).transpose(1, 2) "
                "(view(B, num_heads, L, d_head) mixes positions)")
        for perm, permuted in zip(inputs["perms"], value["permuted"], strict=True):
            moved_out, moved_weights = unpack(permuted, 2, f"{label}: forward")
            order = perm.tolist()
            what = f"{label} on x[:, {order}]"
            right = out[:, perm]
            require_tensor(moved_out, f"out of {what}", shape=tuple(right.shape))
            if not within_tolerance(moved_out, right, atol, rtol):
                raise Mismatch(f"{what}: the output should be the original output permuted the same way{hint}",
                               expected="out[:, perm]", got=f"max abs error {max_abs_error(moved_out, right):.3g}")
            for index, (w, moved) in enumerate(zip(weights, moved_weights, strict=True)):
                right_w = w[:, :, perm][:, :, :, perm]
                require_tensor(moved, f"weights of layer {index} ({what})", shape=tuple(right_w.shape))
                if not within_tolerance(moved, right_w, atol, rtol):
                    raise Mismatch(f"{what}: layer {index}'s weights should be the original ones permuted on "
                                   f"both the query and the key axis{hint}",
                                   expected="weights[:, :, perm][:, :, :, perm]",
                                   got=f"max abs error {max_abs_error(moved, right_w):.3g}")
        return Verdict.ok(f"for {len(inputs['perms'])} permutations, permuting the positions permutes the "
                          "output and both axes of every layer's weights")


# ---- the whole encoder -----------------------------------------------------------------

class GradientsFlow(Check):
    name = "gradients_flow"
    needs_reference = False
    CONFIG = (25, 16, 4, 32, 2, 12, 0)  # vocab_size, d_model, num_heads, d_ff, num_layers, max_len, pad_idx

    def inputs(self, ctx):
        generator = ctx.generator()
        return {"tokens": random_tokens(generator, [8, 5, 3], 8, 1, 25, 0),
                "grad_output": randn(generator, 3, 8, 16)}

    @staticmethod
    def probe(student, inputs, device):
        def run():
            model = build_module(student, device, "MiniTransformerEncoder", *GradientsFlow.CONFIG).train()
            layers = sum(isinstance(module, student.EncoderLayer) for module in model.modules())
            out, _ = model(inputs["tokens"])
            (out * inputs["grad_output"]).sum().backward()
            grads = []
            for name, parameter in model.named_parameters():
                if not parameter.requires_grad:
                    continue
                grad = parameter.grad
                grads.append([name, list(parameter.shape), "none" if grad is None else
                              "non-finite" if not torch.isfinite(grad).all() else
                              "zero" if not grad.any() else "ok"])
            return {"layers": layers, "grads": grads}
        return student.call(run)

    def verdict(self, ctx, inputs, got, expected):
        vocab, d_model, heads, d_ff, num_layers, max_len, pad = self.CONFIG
        label = (f"MiniTransformerEncoder({vocab}, {d_model}, {heads}, {d_ff}, {num_layers}, {max_len}, "
                 f"pad_idx={pad})")
        value = value_of(got, f"{label}, loss = (output * g).sum()")
        if value["layers"] != num_layers:
            raise Mismatch(f"{label}: the model should hold its {num_layers} EncoderLayers as registered "
                           "sub-modules (an nn.ModuleList, not a Python list), or their parameters are never "
                           "trained or moved to the GPU",
                           expected=f"{num_layers} EncoderLayer modules in model.modules()",
                           got=f"{value['layers']}")
        grads = value["grads"]
        if not grads:
            raise Mismatch(f"{label} has no trainable parameters", expected="embedding and layer parameters",
                           got="model.parameters() is empty")
        bad = [f"{name} {tuple(shape)}: {status}" for name, shape, status in grads if status != "ok"]
        if bad:
            raise Mismatch(f"{label}: after loss.backward() some parameters have no gradient, a zero or a "
                           f"non-finite one: {'; '.join(bad[:6])}{' ...' if len(bad) > 6 else ''}. Is something "
                           "detached (.detach(), .data, torch.no_grad), created but never used, or not in "
                           "the forward pass?", expected="a finite, non-zero gradient for every parameter",
                           got=f"{len(bad)} of {len(grads)} parameters without one")
        return Verdict.ok(f"all {len(grads)} parameters of {label} get a finite, non-zero gradient")


class EncoderOutputs(Check):
    name = "encoder_outputs"
    needs_reference = False
    CONFIGS = [  # (vocab_size, d_model, num_heads, d_ff, num_layers, max_len, pad_idx), lengths, L
        ((30, 24, 3, 48, 3, 20, 0), [8, 5, 2], 8),
        ((12, 16, 2, 32, 1, 10, 3), [6, 4], 6),
    ]

    def inputs(self, ctx):
        generator = ctx.generator()
        cases = []
        for config, lengths, length in self.CONFIGS:
            vocab, pad = config[0], config[-1]
            tokens = random_tokens(generator, lengths, length, 0 if pad else 1, vocab, pad)
            if pad:
                tokens[0, 1] = 0  # with pad_idx = 3, id 0 is an ordinary token
            cases.append({"config": list(config), "tokens": tokens})
        return {"cases": cases}

    @staticmethod
    def probe(student, inputs, device):
        def run(case):
            model = build_module(student, device, "MiniTransformerEncoder", *case["config"]).eval()
            with torch.no_grad():
                return model(case["tokens"])
        return [student.call(run, case) for case in inputs["cases"]]

    def verdict(self, ctx, inputs, got, expected):
        for case, record in zip(inputs["cases"], got, strict=True):
            vocab, d_model, heads, d_ff, num_layers, max_len, pad = case["config"]
            tokens = case["tokens"]
            batch, length = tokens.shape
            label = (f"MiniTransformerEncoder({vocab}, {d_model}, {heads}, {d_ff}, {num_layers}, {max_len}, "
                     f"pad_idx={pad}) on tokens {shape_text(tokens)}")
            out, weights = unpack(value_of(record, label), 2, f"{label}: forward")
            require_tensor(out, f"output ({label})", shape=(batch, length, d_model))
            require_finite(out, f"output ({label})")
            if not isinstance(weights, list) or len(weights) != num_layers:
                raise Mismatch(f"{label}: the second result should be a list with one weight tensor per layer",
                               expected=f"a list of {num_layers}",
                               got=f"a list of {len(weights)}" if isinstance(weights, list) else type(weights).__name__)
            padded = tokens == pad
            for index, w in enumerate(weights):
                what = f"layer {index}'s weights ({label})"
                require_tensor(w, what, shape=(batch, heads, length, length))
                require_finite(w, what)
                leaked = w.masked_select(padded[:, None, None, :].expand_as(w))
                if (leaked != 0).any():
                    zero_hint = ("; you seem to mask the tokens equal to 0: use the model's pad_idx"
                                 if pad != 0 and not w.masked_select((tokens == 0)[:, None, None, :].expand_as(w)).any()
                                 else "")
                    raise Mismatch(f"{what}: keys where tokens == pad_idx ({pad}) should get weight exactly 0; "
                                   f"derive key_padding_mask = (tokens == pad_idx) and pass it to every "
                                   f"layer{zero_hint}", expected="0 on every padded key",
                                   got=f"{int((leaked != 0).sum())} non-zero, largest {leaked.abs().max().item():.3g}")
                sums = w.to(torch.float64).sum(-1)
                if not torch.allclose(sums, torch.ones_like(sums), atol=1e-5):
                    raise Mismatch(f"{what}: every row should sum to 1 over the keys", expected="row sums 1",
                                   got=f"row sums from {sums.min().item():.4g} to {sums.max().item():.4g}")
        return Verdict.ok("outputs (B, L, d_model) and one (B, num_heads, L, L) weight tensor per layer; "
                          "keys where tokens == pad_idx get weight 0 (pad_idx 0 and 3)")


# ---- the figure ------------------------------------------------------------------------

HEATMAP_CALL = "plot_attention_heatmap(weights, tokens)"


class HeatmapFigure(Check):
    name = "heatmap_figure"
    needs_reference = False
    TOKENS = ["the", "cat", "sat", "on", "a", "mat"]

    def inputs(self, ctx):
        scores = 1.5 * randn(ctx.generator(), len(self.TOKENS), len(self.TOKENS))
        return {"weights": torch.softmax(scores, dim=-1), "tokens": self.TOKENS}

    @staticmethod
    def probe(student, inputs, device):
        weights = inputs["weights"].detach().to("cpu").clone()  # a CPU tensor, as from .cpu()
        return figure_data(student.plot_attention_heatmap(weights, list(inputs["tokens"])))

    def verdict(self, ctx, inputs, got, expected):
        tokens = list(inputs["tokens"])
        try:
            panels = require_figure(got, HEATMAP_CALL)
            require_heatmap(panels, inputs["weights"], HEATMAP_CALL, x_labels=tokens, y_labels=tokens)
        except Mismatch as failure:
            return Verdict.fail(failure.message, expected=failure.expected, got=failure.got, figures=png_bytes(got))
        return Verdict.ok(f"the figure shows the {len(tokens)}x{len(tokens)} weights unchanged (queries on the "
                          "rows, keys on the columns) with one token label per row and column",
                          figures=png_bytes(got))


class FromScratch(NoForbiddenCalls):
    name = "from_scratch"
