"""Visible checks of the `bahdanau_reversal` assignment (these also ship to students).

Each check: ``inputs`` (grader, seeded) -> ``probe`` (worker, calls the student) ->
``verdict`` (grader). No check needs the reference's numbers: each verdict computes what it
judges from what came back, or runs the PyTorch counterpart itself on the same numbers. The
modules:

- ``common``: the special ids, the sizes V, E, H and the probe-side helpers (no check);
- ``vocabulary``: ``vocabulary``;
- ``shapes``: ``module_shapes``;
- ``encoder``: ``encoder_ignores_padding``;
- ``attention``: ``attention_weights``;
- ``optimizer``: ``adam_matches_pytorch``, ``clip_gradients``, ``from_scratch``;
- ``training``: ``compute_loss``, ``train_and_evaluate``;
- ``teacher_forcing``: ``teacher_forcing``;
- ``decoding``: ``greedy_stops_at_eos``;
- ``heatmap``: ``attention_figure``.

The names the hidden checks reuse are re-exported here, so ``from .checks import ...`` works.
"""

from .common import EOS, PAD, SOS, build_seq2seq, id_list

__all__ = ["EOS", "PAD", "SOS", "build_seq2seq", "id_list"]
