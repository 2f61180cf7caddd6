"""The figure check of `char_rnn`: ``loss_curves`` (plot_loss_curves draws one labelled line per
loss, equal to the history it is given, with a legend).
"""

from __future__ import annotations

import torch

from autograder.toolkit.check import Check, Verdict
from autograder.toolkit.figures import figure_data, png_bytes, require_curves
from autograder.toolkit.verdict import Mismatch

# ---- the loss curves ---------------------------------------------------------------------

class LossCurves(Check):
    name = "loss_curves"
    needs_reference = False

    def inputs(self, ctx):
        generator = ctx.generator()
        epochs = torch.arange(1, 7, dtype=torch.float64)
        train = 1.6 + 1.4 / epochs + 0.02 * torch.rand(6, generator=generator, dtype=torch.float64)
        val = 1.8 + 1.1 / epochs + 0.02 * torch.rand(6, generator=generator, dtype=torch.float64)
        return {"history": {"train_loss": [round(v, 4) for v in train.tolist()],
                            "val_loss": [round(v, 4) for v in val.tolist()]}}

    @staticmethod
    def probe(student, inputs, device):
        history = {key: list(values) for key, values in inputs["history"].items()}
        return figure_data(student.plot_loss_curves(history))

    def verdict(self, ctx, inputs, got, expected):
        figures = png_bytes(got)
        try:
            require_curves(got, inputs["history"], "plot_loss_curves(history)",
                           label_words={"train_loss": ("train",), "val_loss": ("val", "held", "dev", "test")})
        except Mismatch as failure:
            return Verdict.fail(failure.message, expected=failure.expected, got=failure.got, figures=figures)
        return Verdict.ok("one labelled line per loss, equal to the history, with a legend", figures=figures)
