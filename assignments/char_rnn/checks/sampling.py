"""The sampling checks of `char_rnn`, on a grader-made model whose next-character logits are a
known table: ``sample_output`` (the prefix and `length` new characters of the vocabulary, the
same again with a generator seeded alike) and ``sample_temperature`` (the transition counts fit
softmax(logits / T) at three temperatures, by a goodness-of-fit test).
"""

from __future__ import annotations

import torch

from autograder.sandbox.wire import describe
from autograder.toolkit.check import Check, Verdict
from autograder.toolkit.sampling import (
    KnownLogitsModel,
    random_table,
    require_sampled_from,
    temperature_probs,
    transition_counts,
)
from autograder.toolkit.verdict import Mismatch, value_of

# ---- sample ------------------------------------------------------------------------------

ALPHABET = "abcdefg"
SPREAD = 1.5  # the known logits lie in [-1.5, 1.5]: see the handout for the test's power at this spread


def alphabet_vocab() -> tuple[dict, list]:
    return {char: index for index, char in enumerate(ALPHABET)}, list(ALPHABET)


def require_sample(text, prefix: str, length: int, call: str) -> list[int]:
    """The ids of a sample's characters, after checking it is prefix + length characters of
    the alphabet (grading side)."""
    if not isinstance(text, str):
        raise Mismatch(f"{call} should return a str", expected="a str", got=describe(text))
    if not text.startswith(prefix):
        raise Mismatch(f"{call} should start with the prefix", expected=f"{prefix!r}...", got=f"{text[:20]!r}...")
    if len(text) != len(prefix) + length:
        raise Mismatch(f"{call} should return the prefix followed by exactly `length` new characters",
                       expected=f"length {len(prefix) + length}", got=f"length {len(text)}")
    stray = sorted(set(text) - set(ALPHABET))
    if stray:
        raise Mismatch(f"{call}: every character should come from itos", expected=f"characters of {ALPHABET!r}",
                       got=f"also {stray[:5]}")
    return [ALPHABET.index(char) for char in text]


class SampleOutput(Check):
    name = "sample_output"
    needs_reference = False
    PREFIX, LENGTH = "gab", 25

    def inputs(self, ctx):
        return {"table": random_table(len(ALPHABET), ctx.generator(), spread=SPREAD), "seed": int(torch.randint(
            0, 2**31 - 1, (1,), generator=ctx.generator("seed")))}

    @staticmethod
    def probe(student, inputs, device):
        model = KnownLogitsModel(inputs["table"]).to(device)
        stoi, itos = alphabet_vocab()

        def draw(prefix, length, **options):
            return student.attempt("sample", model, dict(stoi), list(itos), prefix, length, **options)

        def seeded():
            return torch.Generator(device=device).manual_seed(inputs["seed"])

        return {"first": draw(SampleOutput.PREFIX, SampleOutput.LENGTH, temperature=1.0, generator=seeded()),
                "again": draw(SampleOutput.PREFIX, SampleOutput.LENGTH, temperature=1.0, generator=seeded()),
                "defaults": draw("c", 10)}

    def verdict(self, ctx, inputs, got, expected):
        prefix, length = self.PREFIX, self.LENGTH
        call = f"sample(model, stoi, itos, {prefix!r}, {length}, temperature=1.0, generator=g)"
        first = value_of(got["first"], call)
        require_sample(first, prefix, length, call)
        require_sample(value_of(got["defaults"], "sample(model, stoi, itos, 'c', 10)"), "c", 10,
                       "sample(model, stoi, itos, 'c', 10)")
        again = value_of(got["again"], call)
        if again != first:
            raise Mismatch(f"{call} twice, with generators seeded alike, gave different samples; pass `generator` to "
                           "every random draw (torch.multinomial(probs, 1, generator=generator))",
                           expected=repr(first), got=repr(again))
        return Verdict.ok(f"{first!r}: a str with the prefix and {length} new characters of the vocabulary, the same "
                          "again with a generator seeded alike; the defaults work too")


class SampleTemperature(Check):
    """A chain of ``sample_length`` characters per temperature from a model whose next-character
    logits are a known (7, 7) table: its transition counts must fit softmax(table / T)
    (Pearson chi-square, false-alarm rate ``sampling_alpha`` per temperature)."""

    name = "sample_temperature"
    needs_reference = False
    PREFIX = "gab"
    TEMPERATURES = (0.5, 1.0, 2.0)

    def inputs(self, ctx):
        seeds = torch.randint(0, 2**31 - 1, (len(self.TEMPERATURES),), generator=ctx.generator("seed"))
        return {"table": random_table(len(ALPHABET), ctx.generator(), spread=SPREAD), "temperatures": list(self.TEMPERATURES),
                "length": ctx.budget("sample_length"), "seeds": seeds.tolist()}

    @staticmethod
    def probe(student, inputs, device):
        model = KnownLogitsModel(inputs["table"]).to(device)
        stoi, itos = alphabet_vocab()
        return [student.attempt("sample", model, dict(stoi), list(itos), SampleTemperature.PREFIX, inputs["length"],
                                temperature=temperature, generator=torch.Generator(device=device).manual_seed(seed))
                for temperature, seed in zip(inputs["temperatures"], inputs["seeds"], strict=True)]

    def verdict(self, ctx, inputs, got, expected):
        table, length, alpha = inputs["table"], inputs["length"], ctx.threshold("sampling_alpha")
        fits = []
        for temperature, record in zip(inputs["temperatures"], got, strict=True):
            call = f"sample(model, stoi, itos, {self.PREFIX!r}, {length}, temperature={temperature:g}, generator=g)"
            tokens = require_sample(value_of(record, call), self.PREFIX, length, call)
            counts = transition_counts(tokens, len(ALPHABET), first=len(self.PREFIX))
            fits.append(require_sampled_from(counts, temperature_probs(table, temperature),
                                             f"{call}, next character after each character", alpha=alpha,
                                             alternatives=wrong_samplers(table, temperature),
                                             token_names=list(ALPHABET)))
        shown = ", ".join(f"T={t:g}: p = {fit.p_value:.2g}" for t, fit in zip(inputs["temperatures"], fits, strict=True))
        return Verdict.ok(f"{length} characters per temperature fit softmax(logits / T) (chi-square test, "
                          f"alpha {alpha:g}; {shown})")


def wrong_samplers(table: torch.Tensor, temperature: float) -> dict[str, torch.Tensor]:
    """The next-character distributions of common sampling mistakes (for hints); those equal
    to the right one at this temperature are left out."""
    right = temperature_probs(table, temperature)
    greedy = torch.nn.functional.one_hot(table.argmax(dim=-1), len(table)).to(torch.float64)
    found = {"softmax(logits * T) (the temperature multiplied, not divided)": temperature_probs(table, 1 / temperature),
             "softmax(logits) (the temperature ignored)": temperature_probs(table, 1.0),
             "the argmax of the logits (greedy decoding, no sampling)": greedy}
    return {what: probs for what, probs in found.items() if not torch.allclose(probs, right)}
