"""Checks of `greedy_generate` and `sample_generate`.

Both receive a grader-made model whose log-probabilities are known. ``greedy_generate`` must
follow the argmax path and ignore the random seed; ``sample_generate`` must draw transitions
from softmax(log_probs / T) at each temperature (chi-square test per previous id) and repeat its
ids for the same generator seed.
"""

from __future__ import annotations

import torch

from autograder.sandbox.wire import describe
from autograder.toolkit.check import Check, Verdict, derive_seed
from autograder.toolkit.sampling import (
    argmax_path,
    random_table,
    require_sampled_from,
    temperature_probs,
    transition_counts,
)
from autograder.toolkit.verdict import Mismatch, value_of

from .common import known_model


def id_list(value, what: str) -> list[int]:
    """A returned sequence of ids as a list of ints, or Mismatch saying what came back."""
    if isinstance(value, torch.Tensor):
        raise Mismatch(f"{what} should return a Python list of ints, not a tensor (use .tolist())",
                       expected="a list of ints", got=describe(value))
    if not isinstance(value, list) or not all(isinstance(item, int) and not isinstance(item, bool) for item in value):
        shown = next((describe(item) for item in value if not isinstance(item, int)), "") if isinstance(value, list) else ""
        raise Mismatch(f"{what} should return a list of ints (convert each id with int(...))",
                       expected="a list of ints", got=f"{describe(value)}" + (f" holding {shown}" if shown else ""))
    return value


def distinct_table(vocab_size: int, generator, spread: float, gap: float = 1e-3) -> torch.Tensor:
    """random_table whose rows have a clear argmax (no near-ties for greedy decoding)."""
    while True:
        table = random_table(vocab_size, generator, spread=spread)
        top = table.topk(2, dim=-1).values
        if (top[:, 0] - top[:, 1]).min() > gap:
            return table


class GreedyGenerate(Check):
    """greedy_generate on a model whose log-probabilities are known equals the argmax path, and
    gives the same ids after the global random seed changes."""

    name = "greedy_generate"
    needs_reference = False
    CASES = [([3], 12), ([0, 5, 2], 9)]

    def inputs(self, ctx):
        return {"table": distinct_table(7, ctx.generator(), spread=2.0), "cases": self.CASES}

    @staticmethod
    def probe(student, inputs, device):
        model, runs = known_model(inputs["table"]), []
        for prefix, length in inputs["cases"]:
            for seed in (1, 2):
                torch.manual_seed(seed)
                runs.append(student.attempt("greedy_generate", model, list(prefix), length))
        return runs

    def verdict(self, ctx, inputs, got, expected):
        table = inputs["table"]
        for index, (prefix, length) in enumerate(inputs["cases"]):
            call = f"greedy_generate(model, {prefix}, {length})"
            first, second = (id_list(value_of(record, call), call) for record in got[2 * index:2 * index + 2])
            right = argmax_path(table, prefix, length)
            require_ids(first, prefix, length, table.shape[0], call)
            if first != right:
                step = next(i for i, (a, b) in enumerate(zip(first, right, strict=True)) if a != b)
                raise Mismatch(f"{call} on a model whose log-probabilities are known does not follow the most likely "
                               f"id: id {step} (after {first[step - 1]}) should be the argmax of the last position's "
                               "log-probabilities", expected=str(right), got=str(first))
            if second != first:
                raise Mismatch(f"{call} gave different ids after torch.manual_seed changed: greedy decoding must not "
                               "draw at random", expected=str(first), got=str(second))
        return Verdict.ok(f"{len(inputs['cases'])} prefixes: the ids follow the argmax of the known log-probabilities "
                          "and do not depend on the random seed")


def require_ids(ids: list[int], prefix: list[int], length: int, vocab_size: int, call: str) -> None:
    """prefix followed by `length` ids in range."""
    if len(ids) != len(prefix) + length or ids[:len(prefix)] != list(prefix):
        raise Mismatch(f"{call} should return prefix_ids followed by {length} new ids",
                       expected=f"{len(prefix) + length} ids starting with {prefix}",
                       got=f"{len(ids)} ids starting with {ids[:len(prefix)]}")
    if any(not 0 <= i < vocab_size for i in ids):
        raise Mismatch(f"{call} returned ids outside the vocabulary", expected=f"ids in 0..{vocab_size - 1}",
                       got=str(sorted(set(i for i in ids if not 0 <= i < vocab_size))[:8]))


class SampleGenerate(Check):
    """sample_generate on a model with known log-probabilities: at each temperature T the
    transitions drawn must follow softmax(log_probs / T) (Pearson's chi-square per previous id,
    false-alarm rate alpha per temperature); the same generator seed gives the same ids."""

    name = "sample_generate"
    needs_reference = False
    PREFIX, VOCAB, SPREAD = [2, 4], 6, 1.5  # logits uniform in [-1.5, 1.5] over 6 ids

    def inputs(self, ctx):
        table = random_table(self.VOCAB, ctx.generator(), spread=self.SPREAD)
        temperatures = [0.5, 1.0, 2.0]
        return {"table": table, "prefix": self.PREFIX, "length": ctx.budget("sampling_draws"),
                "temperatures": temperatures,
                "seeds": [derive_seed(ctx.seed, self.name, str(t)) for t in temperatures],
                "repeat_seed": derive_seed(ctx.seed, self.name, "repeat")}

    @staticmethod
    def probe(student, inputs, device):
        model, prefix = known_model(inputs["table"]), list(inputs["prefix"])
        draws = [student.attempt("sample_generate", model, list(prefix), inputs["length"], temperature=temperature,
                                 generator=torch.Generator().manual_seed(seed))
                 for temperature, seed in zip(inputs["temperatures"], inputs["seeds"], strict=True)]
        repeats = [student.attempt("sample_generate", model, list(prefix), 30, temperature=1.0,
                                   generator=torch.Generator().manual_seed(inputs["repeat_seed"])) for _ in range(2)]
        return {"draws": draws, "repeats": repeats}

    def verdict(self, ctx, inputs, got, expected):
        table, prefix, length = inputs["table"], inputs["prefix"], inputs["length"]
        vocab_size, alpha = table.shape[0], ctx.threshold("sampling_alpha")
        p_values = []
        for temperature, record in zip(inputs["temperatures"], got["draws"], strict=True):
            call = f"sample_generate(model, {prefix}, {length}, temperature={temperature:g}, generator=...)"
            ids = id_list(value_of(record, call), call)
            require_ids(ids, prefix, length, vocab_size, call)
            counts = transition_counts(ids, vocab_size, first=len(prefix))
            alternatives = {"softmax(log_probs * T) (the temperature multiplying, not dividing)":
                            temperature_probs(table, 1 / temperature),
                            "softmax(log_probs) (the temperature ignored)": temperature_probs(table, 1.0),
                            "the argmax (greedy decoding, no sampling)": temperature_probs(table, 1e-6)}
            if temperature == 1.0:
                alternatives = {what: probs for what, probs in alternatives.items() if what.startswith("the argmax")}
            fit = require_sampled_from(counts, temperature_probs(table, temperature),
                                       f"{call} on a model with known log-probabilities", alpha=alpha,
                                       alternatives=alternatives)
            p_values.append(f"T={temperature:g}: p = {fit.p_value:.2g}")
        call = "sample_generate(model, prefix, 30, generator=torch.Generator().manual_seed(s))"
        first, second = (id_list(value_of(record, call), call) for record in got["repeats"])
        if first != second:
            raise Mismatch(f"{call} twice with the same seed gave different ids: draw with "
                           "torch.multinomial(probs, 1, generator=generator) so that the generator decides",
                           expected=str(first), got=str(second))
        return Verdict.ok(f"{length} draws at each temperature follow softmax(log_probs / T) (chi-square test, "
                          f"false-alarm rate {alpha:g} per temperature; {', '.join(p_values)}); the prefix comes first "
                          "and the same generator seed gives the same ids")
