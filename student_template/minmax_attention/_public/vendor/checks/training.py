"""The training checks of `minmax_attention`, on the grader-made :class:`TinyNetwork`:
``train_model_step`` (one batch, one epoch: exactly one AdamW step with the lr and
weight_decay given, recomputed by the grader, and the mean cross-entropy reported) and
``train_model_batches`` (shuffled mini-batches, every example once per epoch, a new order each
epoch, one step per batch, the mean batch loss per epoch reported).
"""

from __future__ import annotations

import torch

from autograder.toolkit.check import Check, Verdict
from autograder.toolkit.probe import plain_history
from autograder.toolkit.verdict import Mismatch, require_tensor

from .task import codes, labels_of, random_examples
from .tiny_model import (
    TinyNetwork,
    gradients,
    mean_cross_entropy,
    optimizer_step,
    step_allowance,
    step_error,
    tiny_state,
    train_losses,
)


class TrainModelStep(Check):
    """train_model with epochs=1 and batch_size = the number of examples makes exactly one
    optimizer step on one batch, which the grading process recomputes with torch.optim.AdamW.
    Adam's first step does not depend on the betas, nor on the scale of the loss (nor on
    gradient clipping); it shows the learning rate, the decoupled weight decay and the
    direction of the gradient. The reported loss must be the mean cross-entropy."""

    name = "train_model_step"
    needs_reference = False
    SETTINGS = {"epochs": 1, "batch_size": 48, "lr": 0.01, "weight_decay": 0.5}

    def inputs(self, ctx):
        generator = ctx.generator()
        x = random_examples(self.SETTINGS["batch_size"], generator)
        return {"state": tiny_state(generator), "x": x, "y": labels_of(x), "settings": dict(self.SETTINGS)}

    @staticmethod
    def probe(student, inputs, device):
        model = TinyNetwork(inputs["state"]).to(device)
        history = student.train_model(model, inputs["x"], inputs["y"], **inputs["settings"])
        return {"history": plain_history(history), "after": {name: p.detach().cpu() for name, p in
                                                             model.named_parameters()},
                "batch_sizes": [len(batch) for batch in model.batches]}

    def verdict(self, ctx, inputs, got, expected):
        settings, state, x = inputs["settings"], inputs["state"], inputs["x"]
        call = (f"train_model(model, train_x ({len(x)} examples), train_y, epochs=1, batch_size={len(x)}, "
                f"lr={settings['lr']:g}, weight_decay={settings['weight_decay']:g})")
        losses = train_losses(got["history"], 1, call)
        sizes = got["batch_sizes"]
        if sizes != [len(x)]:
            raise Mismatch(f"{call} should call the model once with gradients enabled, on one batch of all "
                           f"{len(x)} examples (call it under torch.no_grad() for anything but training)",
                           expected=f"one batch of {len(x)}", got=f"batches of sizes {sizes}" if sizes else
                           "no call with gradients: the model was not trained")
        after = {name: require_tensor(got["after"].get(name), f"parameter {name} after training",
                                      shape=tuple(value.shape)) for name, value in state.items()}
        lr, decay = settings["lr"], settings["weight_decay"]
        allowance = {name: step_allowance(g, lr, ctx.threshold("step_atol")) for name, g in gradients(state, x).items()}
        wanted = optimizer_step(state, x, "AdamW", lr=lr, weight_decay=decay)
        error = step_error(after, wanted, allowance)
        if error > 0:
            candidates = {
                "AdamW with its default weight_decay=0.01 (pass weight_decay=weight_decay)":
                    optimizer_step(state, x, "AdamW", lr=lr),
                "Adam without weight decay": optimizer_step(state, x, "Adam", lr=lr),
                "Adam with an L2 penalty (torch.optim.Adam(..., weight_decay=...)), not AdamW's decoupled decay":
                    optimizer_step(state, x, "Adam", lr=lr, weight_decay=decay),
                "AdamW with its default lr=1e-3 (pass lr=lr)": optimizer_step(state, x, "AdamW", weight_decay=decay),
                "AdamW with lr=2e-3, train_model's default, instead of the lr passed in":
                    optimizer_step(state, x, "AdamW", lr=2e-3, weight_decay=decay),
                "plain SGD": optimizer_step(state, x, "SGD", lr=lr),
                "no step at all (the parameters did not change)": {k: v.clone() for k, v in state.items()},
            }
            like = next((what for what, params in candidates.items() if step_error(after, params, allowance) <= 0),
                        None)
            hint = (f"; what you did matches {like}" if like else
                    "; check the optimizer (torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)) "
                    "and the loss (F.cross_entropy(logits, y))")
            raise Mismatch(f"{call}: the parameters after the one step differ from one AdamW step on the mean "
                           f"cross-entropy{hint}", expected="one AdamW step (computed by the grader)",
                           got=f"max abs difference {error + ctx.threshold('step_atol'):.3g}")
        loss = mean_cross_entropy(torch.cat([p.reshape(-1) for p in state.values()]), x)
        if abs(losses[0] - loss) > ctx.threshold("loss_rtol") * loss:
            hint = (" (that is the sum over the batch: use the mean, F.cross_entropy's default)"
                    if abs(losses[0] - loss * len(x)) < 1e-3 * loss * len(x) else "")
            raise Mismatch(f"{call}: history['train_loss'][0] should be the batch's mean cross-entropy before the "
                           f"step{hint}", expected=f"{loss:.5f}", got=f"{losses[0]:.5f}")
        return Verdict.ok(f"one AdamW step with lr={lr:g} and weight_decay={decay:g} on the mean cross-entropy, "
                          f"as computed by the grader; train_loss [{losses[0]:.4f}]")


class TrainModelBatches(Check):
    """Two epochs over 64 examples in batches of 16, with the default lr and weight_decay: the
    grader's model records each training batch and its parameters at that moment."""

    name = "train_model_batches"
    needs_reference = False
    SETTINGS = {"epochs": 2, "batch_size": 16}
    COUNT = 64

    def inputs(self, ctx):
        generator = ctx.generator()
        x = random_examples(self.COUNT, generator)
        return {"state": tiny_state(generator), "x": x, "y": labels_of(x), "settings": dict(self.SETTINGS)}

    @staticmethod
    def probe(student, inputs, device):
        model = TinyNetwork(inputs["state"]).to(device)
        history = student.train_model(model, inputs["x"], inputs["y"], **inputs["settings"])
        return {"history": plain_history(history), "batches": model.batches, "snapshots": model.snapshots,
                "final": model.flat()}

    def verdict(self, ctx, inputs, got, expected):
        x, settings = inputs["x"], inputs["settings"]
        epochs, size = settings["epochs"], settings["batch_size"]
        per_epoch = len(x) // size
        call = f"train_model(model, train_x ({len(x)} examples), train_y, epochs={epochs}, batch_size={size})"
        losses = train_losses(got["history"], epochs, call)
        batches = [require_tensor(batch, f"batch {i} that {call} fed the model") for i, batch in
                   enumerate(got["batches"])]
        sizes = [len(batch) for batch in batches]
        if sizes != [size] * (epochs * per_epoch):
            raise Mismatch(f"{call} should feed the model {epochs} x {per_epoch} mini-batches of {size} with "
                           "gradients enabled (call it under torch.no_grad() for anything but training)",
                           expected=f"{epochs * per_epoch} batches of {size}",
                           got=f"{len(sizes)} batches, of sizes {sizes[:12]}{' ...' if len(sizes) > 12 else ''}")
        position = {int(code): index for index, code in enumerate(codes(x))}
        orders = []
        for epoch in range(epochs):
            seen = torch.cat(batches[epoch * per_epoch:(epoch + 1) * per_epoch])
            if seen.dim() != 2 or seen.shape[1] != 4 or not all(int(c) in position for c in codes(seen)):
                raise Mismatch(f"{call}: epoch {epoch + 1} fed the model rows that are not training examples",
                               expected="rows of train_x", got=f"rows such as {seen[0].tolist()}")
            order = [position[int(code)] for code in codes(seen)]
            if sorted(order) != list(range(len(x))):
                missing = len(x) - len(set(order))
                raise Mismatch(f"{call}: an epoch is one pass over every training example exactly once; epoch "
                               f"{epoch + 1} left out {missing} and repeated others (shuffle with a permutation, "
                               "torch.randperm, not with random draws)", expected=f"each of the {len(x)} once",
                               got=f"{len(set(order))} distinct examples")
            orders.append(order)
        if orders[0] == list(range(len(x))) or orders[1] == list(range(len(x))):
            raise Mismatch(f"{call}: the examples came in their original order; shuffle them at every epoch "
                           "(torch.randperm(len(train_x)))", expected="a random order", got="the original order")
        if orders[0] == orders[1]:
            raise Mismatch(f"{call}: both epochs used the same order; draw a new permutation at every epoch",
                           expected="a new random order each epoch", got="the same order twice")
        snapshots = [*got["snapshots"], got["final"]]
        still = [i + 1 for i in range(len(batches)) if torch.equal(snapshots[i], snapshots[i + 1])]
        if still:
            raise Mismatch(f"{call}: the parameters should change after every batch (zero_grad, backward and "
                           "optimizer.step() once per batch, inside the batch loop)",
                           expected="a step after each batch", got=f"no change after batch(es) {still}")
        wanted = [sum(mean_cross_entropy(snapshots[i], batches[i]) for i in range(e * per_epoch, (e + 1) * per_epoch))
                  / per_epoch for e in range(epochs)]
        for epoch, (loss, right) in enumerate(zip(losses, wanted, strict=True)):
            if abs(loss - right) > ctx.threshold("loss_rtol") * right:
                raise Mismatch(f"{call}: history['train_loss'][{epoch}] should be the mean of epoch {epoch + 1}'s "
                               "batch losses (each the batch's mean cross-entropy, before its step)",
                               expected=f"{right:.5f}", got=f"{loss:.5f}")
        return Verdict.ok(f"{epochs} epochs of {per_epoch} shuffled batches of {size}, every example once per epoch, "
                          f"a new order each epoch, one step per batch; train_loss "
                          f"[{', '.join(f'{v:.4f}' for v in losses)}]")
