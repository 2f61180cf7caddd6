"""Visible checks of the `attention_heatmaps` assignment (these also ship to students).

Each check: ``inputs`` (grader, seeded) -> ``probe`` (worker, calls the student) ->
``verdict`` (grader). None of them needs the reference's numbers: the attention modules are
initialised by the student's own code, so the checks test properties (shapes, distributions,
how the temperature acts, heads that differ) and exact answers the grader can compute itself.
"""

from __future__ import annotations

import torch

from autograder.sandbox.wire import describe
from autograder.toolkit.check import Check, Verdict
from autograder.toolkit.figures import figure_data, png_bytes, require_figure, require_heatmap
from autograder.toolkit.verdict import (
    Mismatch,
    require_distributions,
    require_finite,
    require_tensor,
    unpack,
)

SENTENCE = "The  Lighthouse\n keeper climbed\tthe STAIRS, every evening."


def normalise(text: str) -> str:
    """Lower-cased, every run of whitespace replaced by one space (as the handout says)."""
    return " ".join(text.lower().split())


def entropy(weights: torch.Tensor) -> float:
    """Mean entropy (nats) of the rows of ``weights``."""
    weights = weights.to(torch.float64)
    return float(-(weights * weights.clamp_min(1e-300).log()).sum(-1).mean())


def attention_pair(value, what: str):
    """(out, weights) from a module's forward."""
    return unpack(value, 2, what)


# ---- make_sequences ----------------------------------------------------------------------

class Sequences(Check):
    name = "sequences"
    needs_reference = False

    def inputs(self, ctx):
        return {"text": SENTENCE, "seq_length": 5}

    @staticmethod
    def probe(student, inputs, device):
        results = {}
        for label, args in (("seq_length=5", (inputs["text"], inputs["seq_length"])), ("default", (inputs["text"],))):
            X, y, stoi, itos = student.make_sequences(*args)
            # itos may be a list or a dict keyed by id: read it by id, as a student's code would
            chars = [itos[index] for index in range(len(stoi))] if isinstance(stoi, dict) else None
            results[label] = {"X": X, "y": y, "stoi": stoi if isinstance(stoi, dict) else describe(stoi),
                              "itos": chars}
        return results

    def verdict(self, ctx, inputs, got, expected):
        text = normalise(inputs["text"])
        for label, length in (("seq_length=5", inputs["seq_length"]), ("default", 20)):
            result = got[label]
            call = f"make_sequences(text{', seq_length=5' if label != 'default' else ''})"
            stoi, itos = result["stoi"], result["itos"]
            if not isinstance(stoi, dict):
                raise Mismatch(f"{call}: stoi should be a dict from character to id", expected="a dict",
                               got=str(stoi))
            _require_vocabulary(stoi, itos, text, call)
            count = len(text) - length
            X = require_tensor(result["X"], f"X from {call}", shape=(count, length))
            y = require_tensor(result["y"], f"y from {call}", shape=(count,))
            for tensor, what in ((X, "X"), (y, "y")):
                if tensor.dtype != torch.int64:
                    raise Mismatch(f"{what} from {call} should hold int64 ids (torch.long), for nn.Embedding "
                                   "and cross_entropy", expected="torch.int64", got=str(tensor.dtype))
            for row in range(count):
                window = "".join(itos[int(i)] if 0 <= int(i) < len(itos) else "?" for i in X[row])
                if window != text[row:row + length] or int(y[row]) != stoi[text[row + length]]:
                    shown = itos[int(y[row])] if 0 <= int(y[row]) < len(itos) else "?"
                    raise Mismatch(f"{call}: pair {row} is not window {row} of the normalised text and the "
                                   "character after it",
                                   expected=f"X[{row}] = {text[row:row + length]!r}, y[{row}] = {text[row + length]!r}",
                                   got=f"X[{row}] = {window!r}, y[{row}] = {shown!r}")
        return Verdict.ok(f"{len(text) - 5} pairs of 5 characters and {len(text) - 20} of 20 (the default), "
                          f"over a {len(stoi)}-character vocabulary of the normalised text")


def _require_vocabulary(stoi: dict, itos: list | None, text: str, call: str) -> None:
    wanted = set(text)
    if set(stoi) != wanted:
        extra = sorted(set(stoi) - wanted)
        hint = ("; lower-case the text first" if any(c.isupper() for c in extra) else
                "; replace every run of whitespace by one space" if any(c.isspace() for c in extra) else "")
        raise Mismatch(f"{call}: the vocabulary is not the set of characters of the normalised text{hint}",
                       expected=f"{len(wanted)} characters", got=f"{len(stoi)}; extra {extra[:8]}, "
                       f"missing {sorted(wanted - set(stoi))[:8]}")
    if sorted(stoi.values()) != list(range(len(stoi))):
        raise Mismatch(f"{call}: ids should be 0 .. V-1, one per character", expected=f"0 .. {len(stoi) - 1}",
                       got=str(sorted(stoi.values()))[:120])
    if itos is None or any(itos[index] != char for char, index in stoi.items()):
        raise Mismatch(f"{call}: itos should invert stoi (itos[stoi[c]] == c)", expected="itos[stoi[c]] == c",
                       got="a different character for some id")


# ---- attention modules -------------------------------------------------------------------

def attention_modules(student, hidden: int, heads: int):
    """The student's single- and multi-head modules, built with their default temperature."""
    return (student.TemperatureSelfAttention(hidden),
            student.MultiHeadTemperatureAttention(hidden, heads))


class AttentionShapes(Check):
    name = "attention_shapes"
    needs_reference = False

    def inputs(self, ctx):
        return {"h": torch.randn(3, 7, 16, generator=ctx.generator()), "heads": 4}

    @staticmethod
    def probe(student, inputs, device):
        single, multi = attention_modules(student, 16, inputs["heads"])
        return {"single": single.to(device)(inputs["h"]), "multi": multi.to(device)(inputs["h"])}

    def verdict(self, ctx, inputs, got, expected):
        B, T, H = inputs["h"].shape
        heads = inputs["heads"]
        out, weights = attention_pair(got["single"], "TemperatureSelfAttention.forward")
        require_tensor(out, "TemperatureSelfAttention output", shape=(B, T, H))
        require_tensor(weights, "TemperatureSelfAttention weights", shape=(B, T, T))
        out, weights = attention_pair(got["multi"], "MultiHeadTemperatureAttention.forward")
        require_tensor(out, f"MultiHeadTemperatureAttention({H}, {heads}) output", shape=(B, T, H))
        require_tensor(weights, f"MultiHeadTemperatureAttention({H}, {heads}) weights", shape=(B, heads, T, T))
        return Verdict.ok(f"outputs (B, T, H) = {(B, T, H)}; weights {(B, T, T)} single-head and "
                          f"{(B, heads, T, T)} with {heads} heads")


class WeightsAreDistributions(Check):
    name = "weights_are_distributions"
    needs_reference = False

    def inputs(self, ctx):
        return {"h": 3 * torch.randn(2, 9, 24, generator=ctx.generator()), "heads": 3}

    @staticmethod
    def probe(student, inputs, device):
        single, multi = attention_modules(student, 24, inputs["heads"])
        return {"single": single.to(device)(inputs["h"])[1], "multi": multi.to(device)(inputs["h"])[1]}

    def verdict(self, ctx, inputs, got, expected):
        B, T, _ = inputs["h"].shape
        require_distributions(got["single"], "TemperatureSelfAttention weights", shape=(B, T, T))
        require_distributions(got["multi"], "MultiHeadTemperatureAttention weights", shape=(B, inputs["heads"], T, T))
        return Verdict.ok("single- and multi-head weights are non-negative and every row sums to 1")


class TemperatureSharpens(Check):
    """The same module and inputs at several temperatures, set through ``module.temperature``:
    the entropy must fall as the temperature falls, and the log-weights must scale as 1/T
    (T * log w is the same up to a constant per row), which is exactly 'divide by T'."""

    name = "temperature_sharpens"
    needs_reference = False

    def inputs(self, ctx):
        return {"h": torch.randn(2, 6, 16, generator=ctx.generator()), "temperatures": [2.0, 1.0, 0.5]}

    @staticmethod
    def probe(student, inputs, device):
        single, multi = attention_modules(student, 16, 2)
        results = {}
        for label, module in (("TemperatureSelfAttention", single), ("MultiHeadTemperatureAttention", multi)):
            module = module.to(device)
            weights = []
            for temperature in inputs["temperatures"]:
                module.temperature = temperature
                with torch.no_grad():
                    weights.append(module(inputs["h"])[1])
            results[label] = weights
        return results

    def verdict(self, ctx, inputs, got, expected):
        temperatures = inputs["temperatures"]
        summary = []
        for label, weights in got.items():
            for temperature, value in zip(temperatures, weights, strict=True):
                require_finite(require_tensor(value, f"{label} weights at temperature {temperature}"),
                               f"{label} weights at temperature {temperature}")
            entropies = [entropy(value) for value in weights]
            shown = ", ".join(f"T={t:g}: {e:.3f}" for t, e in zip(temperatures, entropies, strict=True))
            if not all(later < earlier - 1e-4 for earlier, later in zip(entropies, entropies[1:], strict=False)):
                raise Mismatch(f"{label}: lowering `self.temperature` should sharpen the weights (lower "
                               "entropy). Divide the scores by sqrt(d) * self.temperature, reading "
                               "self.temperature inside forward", expected="entropy falling as T falls",
                               got=f"mean row entropy {shown}")
            scaled = [t * _centred_log(w) for t, w in zip(temperatures, weights, strict=True)]
            gap = max((s - scaled[0]).abs().max().item() for s in scaled[1:])
            if gap > ctx.threshold("temperature_log_atol"):
                raise Mismatch(f"{label}: the weights do not scale as softmax(scores / T): T * log(weights) "
                               "should be the same for every T, up to a constant per row",
                               expected=f"differences below {ctx.threshold('temperature_log_atol'):g}",
                               got=f"differences up to {gap:.3g}")
            summary.append(f"{label} {shown}")
        return Verdict.ok("entropy falls with the temperature and log-weights scale as 1/T (" + "; ".join(summary) + ")")


def _centred_log(weights: torch.Tensor) -> torch.Tensor:
    logs = weights.to(torch.float64).clamp_min(1e-300).log()
    return logs - logs.mean(-1, keepdim=True)


class HeadsDiffer(Check):
    name = "heads_differ"
    needs_reference = False

    def inputs(self, ctx):
        return {"h": torch.randn(2, 7, 32, generator=ctx.generator()), "heads": 4}

    @staticmethod
    def probe(student, inputs, device):
        module = student.MultiHeadTemperatureAttention(32, inputs["heads"]).to(device)
        with torch.no_grad():
            return module(inputs["h"])[1]

    def verdict(self, ctx, inputs, got, expected):
        heads = inputs["heads"]
        weights = require_tensor(got, "MultiHeadTemperatureAttention weights", shape=(2, heads, 7, 7))
        require_finite(weights, "MultiHeadTemperatureAttention weights")
        same = [(i, j) for i in range(heads) for j in range(i + 1, heads)
                if (weights[:, i] - weights[:, j]).abs().max().item() < ctx.threshold("heads_min_difference")]
        if same:
            raise Mismatch("some heads give the same weights: each head should use its own slice of the "
                           "projected queries and keys", expected="every pair of heads differs",
                           got="identical heads " + ", ".join(f"{i} and {j}" for i, j in same))
        return Verdict.ok(f"all {heads} heads attend differently")


class StrongestConnection(Check):
    name = "strongest_connection"
    needs_reference = False

    def inputs(self, ctx):
        generator = ctx.generator()
        weights = torch.softmax(2 * torch.randn(8, 8, generator=generator), dim=-1)
        return {"weights": weights, "outputs": [0, 3, 7]}

    @staticmethod
    def probe(student, inputs, device):
        return [student.attempt("strongest_connection", inputs["weights"], index) for index in inputs["outputs"]]

    def verdict(self, ctx, inputs, got, expected):
        weights = inputs["weights"]
        for index, value in zip(inputs["outputs"], got, strict=True):
            call = f"strongest_connection(weights, {index})"
            if not value["ok"]:
                error = value["error"]
                raise Mismatch(f"{call} raised {error['type']}: {error['message']}", got=error["type"])
            input_index, weight = unpack(value["value"], 2, call)
            right = int(weights[index].argmax())
            try:
                got_index, got_weight = int(input_index), float(weight)
            except (TypeError, ValueError):
                raise Mismatch(f"{call} should return (int, float)", expected="(input_index, weight)",
                               got=f"({describe(input_index)}, {describe(weight)})") from None
            if got_index != right or abs(got_weight - weights[index, right].item()) > 1e-6:
                hint = (" (that is the largest entry of the column: rows are outputs)"
                        if got_index == int(weights[:, index].argmax()) else "")
                raise Mismatch(f"{call} is not the largest weight in row {index}{hint}",
                               expected=f"({right}, {weights[index, right].item():.4f})",
                               got=f"({got_index}, {got_weight:.4f})")
        return Verdict.ok(f"the argmax of rows {inputs['outputs']} and its weight, as expected")


class PredictorShapes(Check):
    name = "predictor_shapes"
    needs_reference = False

    def inputs(self, ctx):
        return {"x": torch.randint(0, 11, (3, 9), generator=ctx.generator()), "vocab_size": 11}

    @staticmethod
    def probe(student, inputs, device):
        results = {}
        for heads in (1, 2):
            model = student.LSTMAttentionPredictor(inputs["vocab_size"], hidden_dim=16, num_heads=heads).to(device)
            with torch.no_grad():
                results[str(heads)] = model(inputs["x"])
        return results

    def verdict(self, ctx, inputs, got, expected):
        B, T = inputs["x"].shape
        V = inputs["vocab_size"]
        for heads, weight_shape in (("1", (B, T, T)), ("2", (B, 2, T, T))):
            call = f"LSTMAttentionPredictor({V}, hidden_dim=16, num_heads={heads})(x of shape {(B, T)})"
            logits, weights = unpack(got[heads], 2, call)
            require_finite(require_tensor(logits, f"logits of {call}", shape=(B, V)), f"logits of {call}")
            require_tensor(weights, f"weights of {call}", shape=weight_shape)
        return Verdict.ok(f"logits (B, V) = {(B, V)}; weights {(B, T, T)} with one head, {(B, 2, T, T)} with two")


# ---- heatmaps ----------------------------------------------------------------------------

INPUT_CHARS, OUTPUT_CHARS = list("keeper"), list("eepers")
HEATMAP = "plot_connectivity_heatmap(weights, input_chars, output_chars{})"


def heatmap_inputs(generator, heads: int | None) -> dict:
    shape = (6, 6) if heads is None else (heads, 6, 6)
    weights = torch.softmax(1.5 * torch.randn(*shape, generator=generator), dim=-1)
    return {"weights": weights, "input_chars": INPUT_CHARS, "output_chars": OUTPUT_CHARS}


def plot_probe(student, inputs, log_scale: bool):
    figure = student.plot_connectivity_heatmap(inputs["weights"], inputs["input_chars"], inputs["output_chars"],
                                               log_scale=log_scale)
    return figure_data(figure)


def heatmap_verdict(inputs, got, *, log_scale: bool) -> Verdict:
    """Every head's panel plots its weights, with input characters under the columns and output
    characters beside the rows; the PNG goes into the report either way."""
    call = HEATMAP.format(", log_scale=True" if log_scale else "")
    figures = png_bytes(got)
    try:
        panels = require_figure(got, call)
        weights = inputs["weights"]
        stack = weights.unsqueeze(0) if weights.dim() == 2 else weights
        square = [panel for panel in panels if tuple(panel["matrix"].shape) == tuple(stack.shape[1:])]
        if len(stack) > 1 and len(square) < len(stack):
            raise Mismatch(f"{call} with {len(stack)} heads should draw one panel per head",
                           expected=f"{len(stack)} heatmaps", got=f"{len(square)}")
        for head, head_weights in enumerate(stack):
            what = call if len(stack) == 1 else f"{call}, head {head}"
            require_heatmap(panels if len(stack) == 1 else [square[head]], head_weights, what,
                            x_labels=inputs["input_chars"], y_labels=inputs["output_chars"], log_scale=log_scale)
    except Mismatch as failure:
        return Verdict.fail(failure.message, expected=failure.expected, got=failure.got, figures=figures)
    heads = "" if inputs["weights"].dim() == 2 else f" for each of {len(inputs['weights'])} heads"
    scale = "a logarithmic" if log_scale else "a linear"
    return Verdict.ok(f"the figure plots the weights it was given{heads}, with input characters on the x axis, "
                      f"output characters on the y axis and {scale} colour scale", figures=figures)


class HeatmapFigure(Check):
    name = "heatmap_figure"
    needs_reference = False

    def inputs(self, ctx):
        return heatmap_inputs(ctx.generator(), None)

    @staticmethod
    def probe(student, inputs, device):
        return plot_probe(student, inputs, log_scale=False)

    def verdict(self, ctx, inputs, got, expected):
        return heatmap_verdict(inputs, got, log_scale=False)


class HeatmapLogScale(HeatmapFigure):
    name = "heatmap_log_scale"

    @staticmethod
    def probe(student, inputs, device):
        return plot_probe(student, inputs, log_scale=True)

    def verdict(self, ctx, inputs, got, expected):
        return heatmap_verdict(inputs, got, log_scale=True)
