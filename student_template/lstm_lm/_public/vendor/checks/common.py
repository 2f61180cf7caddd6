"""Helpers shared by the visible checks of `lstm_lm`.

The names of the three language-model classes the handout fixes; on the probe side, the
``(output, state)`` pair a forward must return and building one of the small models of
``MODEL_CASES`` to run its forward; on the grader side, seeded token batches, partial credit per
model, and the grader-made model with known log-probabilities that the decoding and perplexity
checks hand to the student's functions. No checks live here.
"""

from __future__ import annotations

import torch

from autograder.toolkit.check import Verdict
from autograder.toolkit.probe import ContractError, build_module
from autograder.toolkit.sampling import KnownLogitsModel
from autograder.toolkit.verdict import Mismatch

LSTM, SCRATCH, ATTENTION = "LSTMLanguageModel", "ScratchLSTMLanguageModel", "AttentionLSTMLanguageModel"


def pair(value, what: str):
    """The two items of a tuple a forward must return."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        kind = f"a {type(value).__name__}" if not isinstance(value, torch.Tensor) else f"one tensor {tuple(value.shape)}"
        raise ContractError(f"{what} should return a tuple of 2 items", expected="a tuple of 2 items", got=kind)
    return value


VOCAB, EMBED, HIDDEN = 13, 8, 16
MODEL_CASES = {  # label: (class name, constructor arguments)
    f"{LSTM}({VOCAB}, {EMBED}, {HIDDEN})": (LSTM, (VOCAB, EMBED, HIDDEN)),
    f"{LSTM}({VOCAB}, {EMBED}, {HIDDEN}, num_layers=2)": (LSTM, (VOCAB, EMBED, HIDDEN, 2)),
    f"{SCRATCH}({VOCAB}, {EMBED}, {HIDDEN})": (SCRATCH, (VOCAB, EMBED, HIDDEN)),
    f"{ATTENTION}({VOCAB}, {EMBED}, {HIDDEN})": (ATTENTION, (VOCAB, EMBED, HIDDEN)),
}


def run_model(student, device: str, case: str, *calls):
    """Build one model of MODEL_CASES (eval mode) and return its forward on each call's arguments."""
    name, args = MODEL_CASES[case]
    model = build_module(student, device, name, *args).eval()
    with torch.no_grad():
        return [pair(model(*call), f"{name}.forward") for call in calls]


def tokens(generator, batch: int, length: int) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=generator)


def per_model(cases: list[str], judge, success: str) -> Verdict:
    """Partial credit per model: ``judge(case)`` raises Mismatch for a model that is wrong."""
    problems = []
    for case in cases:
        try:
            judge(case)
        except Mismatch as failure:
            problems.append(failure)
    if not problems:
        return Verdict.ok(success)
    first, right = problems[0], len(cases) - len(problems)
    return Verdict.partial(right, len(cases), f"{right} of {len(cases)} models right; first problem: {first.message}",
                           expected=first.expected, got=first.got)


def known_model(table: torch.Tensor) -> KnownLogitsModel:
    """The grader-made model: log-probabilities log_softmax(table[x]), kept on the CPU."""
    return KnownLogitsModel(table, log_probs=True)
