"""The figure check of `minmax_attention`: ``attention_figure`` (plot_attention draws one
heatmap panel per head with that head's weights, queries on the rows, keys on the columns, the
tokens as tick labels).
"""

from __future__ import annotations

import torch

from autograder.toolkit.check import Check, Verdict
from autograder.toolkit.figures import figure_data, png_bytes, require_figure, require_heatmap
from autograder.toolkit.verdict import Mismatch, value_of

from .task import MAX_TOKEN, MIN_TOKEN, NUM_VALUES, OPS

# ---- the figure --------------------------------------------------------------------------

class AttentionFigure(Check):
    """plot_attention for one max and one min example (4 and 2 heads) of the grader's making:
    every head's panel must plot that head's (4, 4) weights, query positions on the rows, key
    positions on the columns, the tokens under the columns and beside the rows."""

    name = "attention_figure"
    needs_reference = False

    def inputs(self, ctx):
        generator = ctx.generator()
        cases = []
        for op, heads in ((MAX_TOKEN, 4), (MIN_TOKEN, 2)):
            a, b = torch.randperm(NUM_VALUES, generator=generator)[:2].tolist()  # two different numbers
            weights = torch.softmax(2 * torch.randn(heads, 4, 4, generator=generator), dim=-1)
            cases.append({"weights": weights, "tokens": [str(a), OPS[op], str(b), "SEP"]})
        return {"cases": cases}

    @staticmethod
    def probe(student, inputs, device):
        def draw(case):
            return figure_data(student.plot_attention(case["weights"].cpu(), list(case["tokens"])))

        return [student.call(draw, case) for case in inputs["cases"]]

    def verdict(self, ctx, inputs, got, expected):
        figures = [png for record in got if record.get("ok") for png in png_bytes(record["value"])]
        try:
            for case, record in zip(inputs["cases"], got, strict=True):
                weights, tokens = case["weights"], case["tokens"]
                call = f"plot_attention(weights of shape {tuple(weights.shape)}, {tokens})"
                panels = require_figure(value_of(record, call), call)
                square = [panel for panel in panels if tuple(panel["matrix"].shape) == (4, 4)]
                if len(square) < len(weights):
                    raise Mismatch(f"{call}: draw one heatmap panel per head", expected=f"{len(weights)} panels of 4 x 4",
                                   got=f"{len(square)}")
                for head in range(len(weights)):
                    what = f"{call}, head {head}"
                    if not any(_plots(panel, weights[head]) for panel in square) and any(
                            _plots(panel, weights[head].T) for panel in square):
                        raise Mismatch(f"{what}: the panel is the transpose of the head's weights; put the queries on "
                                       "the rows and the keys on the columns (imshow(weights[head]))",
                                       expected="weights[head]", got="weights[head].T")
                    require_heatmap(panels, weights[head], what, x_labels=tokens, y_labels=tokens)
        except Mismatch as failure:
            return Verdict.fail(failure.message, expected=failure.expected, got=failure.got, figures=figures)
        return Verdict.ok("for a max example (4 heads) and a min example (2 heads): one panel per head with that "
                          "head's weights, queries on the rows, keys on the columns, the tokens as tick labels",
                          figures=figures)


def _plots(panel: dict, weights: torch.Tensor) -> bool:
    """Whether a figure panel's matrix is ``weights``."""
    return torch.allclose(panel["matrix"].to(torch.float64), weights.to(torch.float64), atol=1e-6)
