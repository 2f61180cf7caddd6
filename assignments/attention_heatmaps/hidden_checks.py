"""Hidden checks of the `attention_heatmaps` assignment (grader only).

``trained_accuracy`` trains the student's ``LSTMAttentionPredictor`` with the grader's own
fixed, seeded schedule (counted in epochs and batches, never seconds) on a paragraph that
ships only with the grader (``data/paragraph.txt``). The worker returns the model's
predictions; the accuracy is computed here, against targets the grader built itself.
"""

from __future__ import annotations

import torch

from autograder.toolkit.check import Check, Verdict, derive_seed
from autograder.toolkit.verdict import Mismatch, require_tensor

from .checks import HeatmapFigure, heatmap_inputs, heatmap_verdict, normalise, plot_probe


class HeatmapMultiHead(HeatmapFigure):
    name = "heatmap_multi_head"

    def inputs(self, ctx):
        return heatmap_inputs(ctx.generator(), heads=2)

    @staticmethod
    def probe(student, inputs, device):
        return plot_probe(student, inputs, log_scale=False)

    def verdict(self, ctx, inputs, got, expected):
        return heatmap_verdict(inputs, got, log_scale=False)


def training_pairs(text: str, seq_length: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The grader's own next-character pairs (X (N, seq_length), y (N,)) and vocabulary size:
    a bug in the student's make_sequences costs that check only, not this one."""
    normalised = normalise(text)
    chars = sorted(set(normalised))
    ids = torch.tensor([chars.index(char) for char in normalised], dtype=torch.long)
    return ids.unfold(0, seq_length, 1)[:-1].clone(), ids[seq_length:].clone(), len(chars)


class TrainedAccuracy(Check):
    name = "trained_accuracy"
    needs_reference = False

    def inputs(self, ctx):
        text = (ctx.spec.folder / "data" / "paragraph.txt").read_text(encoding="utf-8")
        X, y, vocab_size = training_pairs(text, ctx.budget("seq_length"))
        return {"X": X, "y": y, "vocab_size": vocab_size, "hidden_dim": ctx.budget("hidden_dim"),
                "epochs": ctx.budget("epochs"), "batch_size": ctx.budget("batch_size"), "lr": ctx.budget("lr"),
                "temperature": ctx.threshold("temperature"), "shuffle_seed": derive_seed(ctx.seed, self.name, "shuffle")}

    @staticmethod
    def probe(student, inputs, device):
        """Adam, cross-entropy, gradient clipping at 1.0, shuffled mini-batches: the same work for
        every submission. Returns predictions before and after training, and the epoch losses."""
        X, y = inputs["X"], inputs["y"]
        model = student.LSTMAttentionPredictor(inputs["vocab_size"], hidden_dim=inputs["hidden_dim"], num_heads=1,
                                               temperature=inputs["temperature"]).to(device)

        def predict():
            model.eval()
            with torch.no_grad():
                output = model(X)
            model.train()
            if not isinstance(output, (tuple, list)) or len(output) != 2:
                return None
            return output[0].argmax(-1) if isinstance(output[0], torch.Tensor) and output[0].dim() == 2 else None

        before = predict()
        if before is None:
            return {"problem": "LSTMAttentionPredictor.forward(x (N, T)) should return (logits (N, V), weights)"}
        optimizer = torch.optim.Adam(model.parameters(), lr=inputs["lr"])
        shuffle = torch.Generator().manual_seed(inputs["shuffle_seed"])
        losses = []
        for _ in range(inputs["epochs"]):
            order, total = torch.randperm(len(X), generator=shuffle), 0.0
            for start in range(0, len(X), inputs["batch_size"]):
                batch = order[start:start + inputs["batch_size"]]
                logits = model(X[batch])[0]
                loss = torch.nn.functional.cross_entropy(logits, y[batch])
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                total += loss.item() * len(batch)
            losses.append(total / len(X))
        return {"before": before, "after": predict(), "losses": losses}

    def metrics(self, ctx, inputs, got) -> dict[str, float]:
        """Accuracy before and after training (for the verdict and for calibration)."""
        if not isinstance(got, dict) or "problem" in got:
            raise Mismatch(got.get("problem", "unexpected probe result") if isinstance(got, dict) else "no result")
        y = inputs["y"]
        return {name: float((require_tensor(got[name], f"predictions {name} training", shape=tuple(y.shape))
                             == y).double().mean()) for name in ("before", "after")}

    def baselines(self, ctx, inputs) -> dict[str, float]:
        y = inputs["y"]
        return {"always the commonest character": float((y == y.mode().values).double().mean())}

    def verdict(self, ctx, inputs, got, expected):
        accuracy = self.metrics(ctx, inputs, got)
        threshold = ctx.threshold("min_train_accuracy")
        losses = got["losses"]
        trend = f"loss {losses[0]:.2f} -> {losses[-1]:.2f}" if losses else "no epochs"
        schedule = (f"{inputs['epochs']} epochs of {inputs['batch_size']}-sequence batches, Adam lr {inputs['lr']:g}, "
                    f"hidden_dim {inputs['hidden_dim']}")
        text = (f"next-character training accuracy {accuracy['after']:.1%} after the grader's schedule ({schedule}; "
                f"{trend}; {accuracy['before']:.1%} before training)")
        if accuracy["after"] < threshold:
            return Verdict.fail(f"{text}, below the threshold of {threshold:.0%}. Check that the LSTM is "
                                "batch_first, that the prediction comes from the last position, and that "
                                "gradients reach every layer", expected=f">= {threshold:.0%}",
                                got=f"{accuracy['after']:.1%}")
        return Verdict.ok(f"{text}; threshold {threshold:.0%}")
