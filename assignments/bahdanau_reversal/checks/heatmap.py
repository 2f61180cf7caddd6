"""The `attention_figure` check: visualize_attention must save a readable, non-blank PNG at
save_path, and the figure it saved (read back as data) must plot the weights with one source
token under each column and one predicted token beside each row; the PNG goes into the report.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import torch

from autograder.toolkit.check import Check, Verdict
from autograder.toolkit.figures import (
    PNG_SIGNATURE,
    figure_data,
    png_bytes,
    require_figure,
    require_heatmap,
    require_png,
    saved_file,
)
from autograder.toolkit.verdict import Mismatch, value_of

# ---- the heatmap -------------------------------------------------------------------------

SRC_TOKENS = ["red", "fox", "jumps", "over", "logs", "<EOS>"]
PRED_TOKENS = ["logs", "over", "fox", "red", "<EOS>"]


class AttentionFigure(Check):
    """visualize_attention(src_tokens, pred_tokens, weights (5, 6), save_path=...) with a
    save_path in a fresh folder: the file there must be a readable, non-blank PNG of a sensible
    size, and the figure saved (read back as data) must plot the weights with one source token
    under each column and one predicted token beside each row. The PNG is shown in the report."""

    name = "attention_figure"
    needs_reference = False

    def inputs(self, ctx):
        weights = torch.softmax(2.5 * torch.randn(len(PRED_TOKENS), len(SRC_TOKENS), generator=ctx.generator()), dim=-1)
        return {"weights": weights, "src_tokens": SRC_TOKENS, "pred_tokens": PRED_TOKENS}

    @staticmethod
    def probe(student, inputs, device):
        import matplotlib.pyplot as plt
        from matplotlib.figure import Figure

        folder = tempfile.mkdtemp(prefix="attention-figure-")
        path = os.path.join(folder, "attention_heatmap.png")
        saved, original = [], Figure.savefig

        def remember(self, *args, **kwargs):
            saved.append(self)
            return original(self, *args, **kwargs)

        Figure.savefig = remember
        try:
            record = student.attempt("visualize_attention", list(inputs["src_tokens"]), list(inputs["pred_tokens"]),
                                     inputs["weights"].cpu(), save_path=path)
        finally:
            Figure.savefig = original
        try:
            if not record["ok"]:
                return {"call": record}
            returned = record["value"]
            figure = saved[-1] if saved else returned if isinstance(returned, Figure) else plt.gcf()
            return {"call": {"ok": True, "value": None}, "png": saved_file(path), "figure": figure_data(figure)}
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def verdict(self, ctx, inputs, got, expected):
        call = "visualize_attention(src_tokens, pred_tokens, weights (5, 6), save_path=...)"
        value_of(got["call"], call)
        png = got["png"]
        raw = png.numpy().tobytes() if isinstance(png, torch.Tensor) else None
        figures = [raw] if raw and raw.startswith(PNG_SIGNATURE) else png_bytes(got["figure"])
        try:
            width, height = require_png(png, f"{call} (the file at save_path)")
            panels = require_figure(got["figure"], f"{call} (the figure it saved)")
            require_heatmap(panels, inputs["weights"], call, x_labels=inputs["src_tokens"],
                            y_labels=inputs["pred_tokens"])
        except Mismatch as failure:
            return Verdict.fail(failure.message, expected=failure.expected, got=failure.got, figures=figures)
        return Verdict.ok(f"a {width} x {height} PNG at save_path; the heatmap plots the weights with the source "
                          "tokens on the x axis and the predicted tokens on the y axis", figures=figures)
