"""Hidden checks of the `char_rnn` assignment (grader only).

``trained_loss`` builds the student's ``CharRNN`` with the grader's sizes, has the student's
``train_model`` train it with the grader's fixed settings (counted in epochs, never seconds) on
the first 90% of a text that ships only with the grader (``data/moby_dick.txt``), and sends
back the model's log-probabilities on windows of the last 10%. The cross-entropy is computed
here, against targets the grader cuts from the text itself.
"""

from __future__ import annotations

import math

import torch

from autograder.toolkit.check import Check, Verdict
from autograder.toolkit.corpus import next_char_windows, ngram_losses, split_ids
from autograder.toolkit.probe import build_module, plain_history
from autograder.toolkit.verdict import require_finite, require_tensor

from .checks import forward_pair, history_lists

CELL = "gru"  # the grader's model is CharRNN(V, embed_dim, hidden_dim, num_layers, cell="gru") ([budgets] holds numbers)
SETTINGS = ("epochs", "seq_len", "batch_size", "lr")


class TrainedLoss(Check):
    name = "trained_loss"
    needs_reference = False

    def inputs(self, ctx):
        text = (ctx.spec.folder / "data" / "moby_dick.txt").read_text(encoding="utf-8")
        train_ids, val_ids, vocab_size = split_ids(text)
        X, _ = next_char_windows(val_ids, ctx.budget("eval_len"))
        return {"train_ids": train_ids, "val_ids": val_ids, "X": X, "vocab_size": vocab_size,
                "sizes": {key: ctx.budget(key) for key in ("embed_dim", "hidden_dim", "num_layers")},
                "settings": {key: ctx.budget(key) for key in SETTINGS}}

    @staticmethod
    def probe(student, inputs, device):
        """The student's train_model on the grader's model, then held-out log-probabilities
        (eval mode, no gradients, each window from hidden=None) as float32."""
        sizes = inputs["sizes"]
        model = build_module(student, device, "CharRNN", inputs["vocab_size"], sizes["embed_dim"], sizes["hidden_dim"],
                            num_layers=sizes["num_layers"], cell=CELL)
        history = student.train_model(model, inputs["train_ids"], inputs["val_ids"], **inputs["settings"], clip=1.0)
        model.eval()
        with torch.no_grad():
            logits, _ = forward_pair(model(inputs["X"]), "CharRNN.forward(x)")
            log_probs = torch.log_softmax(logits.float(), dim=-1) if isinstance(logits, torch.Tensor) else logits
        return {"log_probs": log_probs, "history": plain_history(history)}

    def metrics(self, ctx, inputs, got) -> dict[str, float]:
        """Held-out cross-entropy (nats per character), for the verdict and for calibration."""
        X, Y = next_char_windows(inputs["val_ids"], ctx.budget("eval_len"))
        log_probs = require_tensor(got["log_probs"], "the trained model's logits on the held-out windows",
                                   shape=(*X.shape, inputs["vocab_size"]))
        require_finite(log_probs, "the trained model's logits on the held-out windows")
        return {"val_loss": float(-log_probs.to(torch.float64).gather(-1, Y.unsqueeze(-1)).mean())}

    def baselines(self, ctx, inputs) -> dict[str, float]:
        """Held-out loss of models that need no network: character frequencies (unigram) and the
        previous character only (bigram), both counted on the training split."""
        X, Y = next_char_windows(inputs["val_ids"], ctx.budget("eval_len"))
        return ngram_losses(inputs["train_ids"], X, Y, inputs["vocab_size"])

    def verdict(self, ctx, inputs, got, expected):
        threshold, settings, sizes = ctx.threshold("max_val_loss"), inputs["settings"], inputs["sizes"]
        schedule = (f"CharRNN(V={inputs['vocab_size']}, {sizes['embed_dim']}, {sizes['hidden_dim']}, "
                    f"num_layers={sizes['num_layers']}, cell={CELL!r}) trained by your train_model with "
                    + ", ".join(f"{key}={value:g}" for key, value in settings.items()) + ", clip=1.0")
        history = history_lists(got["history"], settings["epochs"], f"train_model(..., epochs={settings['epochs']})")
        loss = self.metrics(ctx, inputs, got)["val_loss"]
        baselines = self.baselines(ctx, inputs)
        unigram, bigram = baselines.values()
        reported = f"your train_model reported train_loss {history['train_loss'][0]:.3f} -> {history['train_loss'][-1]:.3f}"
        text = (f"held-out cross-entropy {loss:.3f} nats per character ({schedule}; {reported}). For comparison: "
                f"uniform guessing ln V = {math.log(inputs['vocab_size']):.3f}, character frequencies only "
                f"{unigram:.3f}, the previous character only {bigram:.3f}")
        if not loss <= threshold:
            return Verdict.fail(f"{text}; the threshold is {threshold:g}. {self.hint(loss, history, unigram, bigram)}",
                                expected=f"<= {threshold:g}", got=f"{loss:.3f}")
        return Verdict.ok(f"{text}; threshold {threshold:g}")


    @staticmethod
    def hint(loss: float, history: dict[str, list[float]], unigram: float, bigram: float) -> str:
        """What a loss like this usually means."""
        if history["train_loss"][-1] < loss - 1.0:
            return ("Your train_model's own training loss is far below the held-out loss: a model that learns to "
                    "copy its input does that, so check that make_examples shifts the targets by one (Y[:, t] is "
                    "the character after X[:, t])")
        if loss > unigram - 0.1:
            return ("That is no better than knowing how common each character is: check that train_model trains "
                    "the model it is given, with one optimizer step per batch and the learning rate it is given")
        if bigram - 0.1 <= loss <= bigram + 0.3:
            return ("That is about what a model that sees only the previous character gets: check that forward "
                    "carries the hidden state from each step to the next (one call of the recurrent layer over "
                    "the whole sequence does)")
        return ("Check that train_model trains the model it is given, one optimizer step per batch over a whole "
                "pass of make_examples(train_ids, seq_len) per epoch, with the learning rate it is given")
