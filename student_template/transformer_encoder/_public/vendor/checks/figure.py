"""Checks of `plot_attention_heatmap`.

``heatmap_figure`` checks that the figure shows the given weights unchanged (queries on the rows,
keys on the columns) with one token label per row and column.
"""

from __future__ import annotations

import torch

from autograder.toolkit.check import Check, Verdict
from autograder.toolkit.figures import figure_data, png_bytes, require_figure, require_heatmap
from autograder.toolkit.verdict import Mismatch

from .common import randn

HEATMAP_CALL = "plot_attention_heatmap(weights, tokens)"


class HeatmapFigure(Check):
    name = "heatmap_figure"
    needs_reference = False
    TOKENS = ["the", "cat", "sat", "on", "a", "mat"]

    def inputs(self, ctx):
        scores = 1.5 * randn(ctx.generator(), len(self.TOKENS), len(self.TOKENS))
        return {"weights": torch.softmax(scores, dim=-1), "tokens": self.TOKENS}

    @staticmethod
    def probe(student, inputs, device):
        weights = inputs["weights"].detach().to("cpu").clone()  # a CPU tensor, as from .cpu()
        return figure_data(student.plot_attention_heatmap(weights, list(inputs["tokens"])))

    def verdict(self, ctx, inputs, got, expected):
        tokens = list(inputs["tokens"])
        try:
            panels = require_figure(got, HEATMAP_CALL)
            require_heatmap(panels, inputs["weights"], HEATMAP_CALL, x_labels=tokens, y_labels=tokens)
        except Mismatch as failure:
            return Verdict.fail(failure.message, expected=failure.expected, got=failure.got, figures=png_bytes(got))
        return Verdict.ok(f"the figure shows the {len(tokens)}x{len(tokens)} weights unchanged (queries on the "
                          "rows, keys on the columns) with one token label per row and column",
                          figures=png_bytes(got))
