"""Visible checks of the `lstm_lm` assignment (these also ship to students).

Each check: ``inputs`` (grader, seeded) -> ``probe`` (worker, calls the student) ->
``verdict`` (grader). No check needs the reference solution. The cell is compared with an
oracle the verdict runs itself (``torch.nn.LSTMCell`` in float64, loaded with the grader's
weights: it never runs next to the student's code); the language models are tested for
properties (shapes, normalised log-probabilities, state carried, causality); the decoding
functions and ``perplexity`` receive a grader-made model with known log-probabilities
(:class:`autograder.toolkit.sampling.KnownLogitsModel`), so the right answer is known exactly or, for
sampling, tested statistically.

Modules: ``common`` (shared helpers, no checks), ``cell`` (LSTMCell and the rule against
PyTorch's LSTM), ``models`` (shapes, normalisation, state), ``context`` (the models use the
past and only the past), ``decoding`` (greedy and sampled generation) and ``perplexity``.
"""

from .common import ATTENTION, LSTM, SCRATCH
from .models import require_log_probs

__all__ = ["ATTENTION", "LSTM", "SCRATCH", "require_log_probs"]
