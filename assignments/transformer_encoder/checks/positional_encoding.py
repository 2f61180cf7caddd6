"""Checks of `sinusoidal_positional_encoding`.

``positional_encoding`` compares the student's table, for several (seq_len, d_model), with the
sin/cos formula computed here in float64, and names the common mistake (sin and cos swapped,
the wrong exponent, positions from 1, halves instead of interleaved columns) that the values
match when they are wrong.
"""

from __future__ import annotations

import torch

from autograder.toolkit.check import Check, Verdict
from autograder.toolkit.verdict import (
    Mismatch,
    max_abs_error,
    require_finite,
    require_tensor,
    value_of,
    within_tolerance,
)


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
