"""Visible checks of the `transformer_encoder` assignment (these also ship to students).

Each check: ``inputs`` (grader, seeded) -> ``probe`` (worker, calls the student) ->
``verdict`` (grader). No check needs the reference solution: every verdict decides from
properties (shapes, normalisation, equivariance, padding) or from an oracle it computes
itself in the grading process (`torch.nn.MultiheadAttention` loaded with the grader's
weights, the positional-encoding formula in float64).

Modules: ``common`` (shared helpers, no checks), ``positional_encoding``, ``vocabulary``
(build_vocab, encode_batch), ``attention`` (MultiHeadSelfAttention, the padding mask, the
rule against built-in layers), ``layer`` (EncoderLayer), ``encoder`` (MiniTransformerEncoder)
and ``figure`` (the attention heatmap).
"""

from .common import random_tokens, shape_text

__all__ = ["random_tokens", "shape_text"]
