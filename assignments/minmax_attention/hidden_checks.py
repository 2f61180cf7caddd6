"""Hidden checks of the `minmax_attention` assignment (grader only).

``trained_accuracy``: the grading process lists all 32768 examples itself and splits them at
random with a generator seeded from the grading seed (a third for training, the rest held
out). The worker gets the training examples with their labels and the held-out examples
*without* labels; it builds the student's ``AttentionNetwork`` with the grader's sizes, has the
student's ``train_model`` train it with the grader's settings (counted in epochs and batches,
never seconds), and sends back the predicted class of every held-out example. The accuracy,
for the max and the min examples separately, is computed here.
"""

from __future__ import annotations

import torch

from autograder.sandbox.wire import describe
from autograder.toolkit.check import Check, Verdict
from autograder.toolkit.probe import plain_history
from autograder.toolkit.verdict import Mismatch, require_tensor

from .checks import (
    MAX_TOKEN,
    N_EXAMPLES,
    VOCAB_SIZE,
    all_examples,
    build_network,
    labels_of,
    train_losses,
)

SETTINGS = ("epochs", "batch_size", "lr", "weight_decay")
CHUNK = 4096  # held-out examples per forward call


class TrainedAccuracy(Check):
    name = "trained_accuracy"
    needs_reference = False

    def inputs(self, ctx):
        x, y = all_examples()
        order = torch.randperm(N_EXAMPLES, generator=ctx.generator("split"))
        n_train = round(ctx.budget("train_fraction") * N_EXAMPLES)
        train, held = order[:n_train], order[n_train:]
        return {"train_x": x[train], "train_y": y[train], "held_x": x[held],  # held-out labels stay here
                "sizes": {"d_model": ctx.budget("d_model"), "num_heads": ctx.budget("num_heads")},
                "settings": {key: ctx.budget(key) for key in SETTINGS}}

    @staticmethod
    def probe(student, inputs, device):
        """The student's train_model on the student's network (built with the grader's sizes),
        then the argmax class of every held-out example, in eval mode without gradients. A
        forward pre-hook counts the examples fed forward with gradients (the work done)."""
        sizes = inputs["sizes"]
        model = build_network(student, device, sizes["d_model"], sizes["num_heads"]).train()
        seen = [0]

        def count(module, args, kwargs):
            x = args[0] if args else kwargs.get("x")
            if torch.is_grad_enabled() and isinstance(x, torch.Tensor):
                seen[0] += len(x)

        hook = model.register_forward_pre_hook(count, with_kwargs=True)
        history = student.train_model(model, inputs["train_x"], inputs["train_y"], **inputs["settings"])
        hook.remove()
        model.eval()
        held = inputs["held_x"]
        predictions = []
        with torch.no_grad():
            for start in range(0, len(held), CHUNK):
                logits = model(held[start:start + CHUNK])
                if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
                    return {"problem": "AttentionNetwork.forward(x) should return logits (B, 128), got "
                                       + describe(logits)}
                predictions.append(logits.argmax(-1).cpu())
        return {"predictions": torch.cat(predictions), "history": plain_history(history), "seen": seen[0]}

    def metrics(self, ctx, inputs, got) -> dict[str, float]:
        """Held-out accuracy: all examples, the max examples, the min examples."""
        if not isinstance(got, dict) or "problem" in got:
            raise Mismatch(got.get("problem", "unexpected probe result") if isinstance(got, dict) else "no result")
        held = inputs["held_x"]
        predictions = require_tensor(got["predictions"], "the predicted classes of the held-out examples",
                                     shape=(len(held),))
        correct = (predictions == labels_of(held)).double()
        is_max = held[:, 1] == MAX_TOKEN
        return {"accuracy": float(correct.mean()), "max_accuracy": float(correct[is_max].mean()),
                "min_accuracy": float(correct[~is_max].mean())}

    def baselines(self, ctx, inputs) -> dict[str, float]:
        """Held-out accuracy of answers that need no network: copying the first number, and the
        commonest training label of each operation."""
        held, train_x, train_y = inputs["held_x"], inputs["train_x"], inputs["train_y"]
        labels = labels_of(held)
        commonest = {op: int(train_y[train_x[:, 1] == op].mode().values) for op in (MAX_TOKEN, MAX_TOKEN + 1)}
        guess = torch.where(held[:, 1] == MAX_TOKEN, commonest[MAX_TOKEN], commonest[MAX_TOKEN + 1])
        return {"copy the first number": float((held[:, 0] == labels).double().mean()),
                "the commonest label of each operation": float((guess == labels).double().mean())}

    def verdict(self, ctx, inputs, got, expected):
        threshold, settings, sizes = ctx.threshold("min_accuracy"), inputs["settings"], inputs["sizes"]
        accuracy = self.metrics(ctx, inputs, got)
        n_train, n_held = len(inputs["train_x"]), len(inputs["held_x"])
        schedule = (f"AttentionNetwork(vocab_size={VOCAB_SIZE}, d_model={sizes['d_model']}, "
                    f"num_heads={sizes['num_heads']}) trained by your train_model on {n_train} examples with "
                    + ", ".join(f"{key}={value:g}" for key, value in settings.items()))
        try:
            losses = train_losses(got["history"], settings["epochs"], f"train_model(..., epochs={settings['epochs']})")
            reported = f"your train_loss {losses[0]:.3f} -> {losses[-1]:.3f}"
        except Mismatch as failure:
            reported = f"history not as the handout says: {failure.message}"
        work = settings["epochs"] * n_train
        fed = (f"{got['seen']} examples fed forward with gradients (epochs x training examples = {work})")
        copy_first = self.baselines(ctx, inputs)["copy the first number"]
        text = (f"held-out accuracy {accuracy['max_accuracy']:.1%} on max examples and {accuracy['min_accuracy']:.1%} "
                f"on min examples ({accuracy['accuracy']:.1%} of {n_held} examples the network never saw; "
                f"{schedule}; {reported}; {fed}). Copying the first number would score {copy_first:.1%}")
        worst = min(accuracy["max_accuracy"], accuracy["min_accuracy"])
        if worst < threshold:
            return Verdict.fail(f"{text}; the threshold is {threshold:.0%} for each. {self.hint(accuracy, got['seen'], work)}",
                                expected=f">= {threshold:.0%} on max and on min examples",
                                got=f"max {accuracy['max_accuracy']:.1%}, min {accuracy['min_accuracy']:.1%}")
        return Verdict.ok(f"{text}; threshold {threshold:.0%} for each")

    @staticmethod
    def hint(accuracy: dict[str, float], seen: int, work: int) -> str:
        """What a failing accuracy usually means."""
        if seen == 0:
            return ("Your train_model never called the model it was given with gradients enabled: train that "
                    "model, in place")
        if seen < work:
            return f"Your train_model fed the network fewer examples than the schedule asks ({seen} < {work})"
        if accuracy["accuracy"] < 0.05:
            return ("That is about chance (1 in 128). Check that the output at the SEP position can see the "
                    "numbers (the attention mask, the softmax over the keys), and that train_model takes an "
                    "optimizer step after every batch")
        return ("Check that the network reads its answer at the last (SEP) position, that it has token and "
                "position embeddings, and that train_model shuffles, steps after every batch and uses AdamW "
                "with the lr and weight_decay it is given")
