"""Visible checks of the `char_rnn` assignment (these also ship to students).

Each check: ``inputs`` (grader, seeded) -> ``probe`` (worker, calls the student) ->
``verdict`` (grader). No check needs the reference's numbers: the verdicts decide from
properties (round trips, windows, shapes, continuation of the hidden state), from losses the
grading process computes itself from the logits that come back, and, for ``sample``, from a
goodness-of-fit test against a grader-made model whose next-character distribution is known.

Modules: ``common`` (shared helpers), ``data`` (vocabulary, examples), ``model`` (shapes,
initial_loss, hidden_state), ``training`` (train_history), ``sampling`` (sample_output,
sample_temperature), ``curves`` (loss_curves).
"""

from .common import forward_pair
from .training import history_lists

__all__ = ["forward_pair", "history_lists"]
