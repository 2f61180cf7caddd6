"""The loss and the training loop: `compute_loss` compares the value and gradient of
compute_loss with the masked mean cross-entropy (float64), called plainly and on the callers'
non-contiguous slices; `train_and_evaluate` runs train_epoch and evaluate on a fresh model and
three padded batches (a loss near ln V, parameters trained by one and left alone by the other,
evaluate deterministic).
"""

from __future__ import annotations

import math

import torch

from autograder.sandbox.wire import describe
from autograder.toolkit.check import Check, Verdict
from autograder.toolkit.probe import plain_number
from autograder.toolkit.verdict import (
    Mismatch,
    max_abs_error,
    require_tensor,
    value_of,
    within_tolerance,
)

from .common import EOS, PAD, SOS, E, H, V, build_seq2seq, random_batch, require_number

# ---- compute_loss ------------------------------------------------------------------------

LOSS_LENGTHS = [7, 4, 2]  # real target positions per row (after dropping <SOS>), then padding


def masked_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, pad: int = PAD) -> torch.Tensor:
    """Mean cross-entropy over the non-pad targets, float64 (grading side)."""
    log_probs = torch.log_softmax(logits.to(torch.float64), dim=-1)
    keep = targets != pad
    picked = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return -(picked * keep).sum() / keep.sum()


class ComputeLoss(Check):
    """compute_loss on logits (B, T, V) and padded targets (B, T), called plainly and as the
    callers call it, with outputs[:, 1:] and tgt[:, 1:] (non-contiguous slices): the value and
    its gradient with respect to the logits equal the masked mean cross-entropy's (float64)."""

    name = "compute_loss"
    needs_reference = False

    def inputs(self, ctx):
        generator = ctx.generator()
        B, T = len(LOSS_LENGTHS), max(LOSS_LENGTHS) + 1
        tgt = torch.zeros(B, T, dtype=torch.long)
        for b, length in enumerate(LOSS_LENGTHS):
            tgt[b, 0] = SOS
            tgt[b, 1:length + 1] = torch.randint(4, V, (length,), generator=generator)
            tgt[b, length] = EOS
        return {"outputs": 2 * torch.randn(B, T, V, generator=generator), "tgt": tgt}

    @staticmethod
    def probe(student, inputs, device):
        def run(sliced: bool):
            full = inputs["outputs"].clone().requires_grad_(True)
            if sliced:
                loss = student.compute_loss(full[:, 1:], inputs["tgt"][:, 1:], pad_idx=PAD)
            else:
                loss = student.compute_loss(full[:, 1:].contiguous(), inputs["tgt"][:, 1:].contiguous())
            result = {"loss": plain_number(loss) if not isinstance(loss, torch.Tensor) else loss.detach(),
                      "is_tensor": isinstance(loss, torch.Tensor),
                      "has_grad": isinstance(loss, torch.Tensor) and loss.requires_grad, "grad": None}
            if result["has_grad"] and loss.numel() == 1:
                loss.reshape(()).backward()
                result["grad"] = None if full.grad is None else full.grad[:, 1:]
            return result
        return {"plain": student.call(run, False), "sliced": student.call(run, True)}

    def verdict(self, ctx, inputs, got, expected):
        rtol, atol = ctx.threshold("loss_rtol"), ctx.threshold("loss_atol")
        logits = inputs["outputs"][:, 1:].to(torch.float64).requires_grad_(True)
        targets = inputs["tgt"][:, 1:]
        right = masked_cross_entropy(logits, targets)
        right.backward()
        shown = []
        for key, call in (("plain", "compute_loss(outputs, targets)"),
                          ("sliced", "compute_loss(outputs[:, 1:], tgt[:, 1:], pad_idx=0) (non-contiguous slices)")):
            value = value_of(got[key], call)
            B, T, _ = logits.shape
            call = f"{call} with outputs {(B, T, V)} and targets {(B, T)} padded with 0"
            loss = value["loss"]
            if not value["is_tensor"]:
                raise Mismatch(f"{call} should return the loss as a tensor (train_epoch calls loss.backward() on it), "
                               "not a Python number", expected="a scalar tensor", got=describe(loss))
            if loss.numel() != 1:
                raise Mismatch(f"{call} should return one number, the mean over the non-padding targets",
                               expected="a scalar tensor", got=describe(loss))
            mine = float(loss.reshape(()))
            if not math.isfinite(mine) or abs(mine - right.item()) > atol + rtol * abs(right.item()):
                raise Mismatch(f"{call}: the loss should be the cross-entropy averaged over the target positions that "
                               f"are not padding{self.hint(mine, logits.detach(), targets, rtol)}",
                               expected=f"{right.item():.6f}", got=f"{mine:.6f}")
            if not value["has_grad"] or value["grad"] is None:
                raise Mismatch(f"{call}: the loss does not carry a gradient back to the outputs (is it detached, or "
                               "computed under torch.no_grad()?)", expected="loss.requires_grad", got="no gradient")
            require_tensor(value["grad"], f"the gradient of {call}", shape=tuple(logits.shape))
            if not within_tolerance(value["grad"], logits.grad, atol, rtol * 10):
                raise Mismatch(f"{call}: the value is right but its gradient with respect to the outputs is not the "
                               "masked mean's", expected="the gradient of the masked mean cross-entropy",
                               got=f"max abs error {max_abs_error(value['grad'], logits.grad):.3g}")
            shown.append(f"{mine:.4f}")
        real = int((targets != PAD).sum())
        return Verdict.ok(f"the mean cross-entropy over the {real} non-padding targets of {targets.numel()} "
                          f"({shown[0]}), with the right gradient; the callers' non-contiguous slices work too")

    @staticmethod
    def hint(mine: float, logits: torch.Tensor, targets: torch.Tensor, rtol: float) -> str:
        log_probs = torch.log_softmax(logits, dim=-1)
        picked = -log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        keep = (targets != PAD).to(torch.float64)
        wrongs = {"the mean over every position, padding included": picked.mean().item(),
                  "the sum over the non-padding targets instead of the mean": (picked * keep).sum().item(),
                  "the mean of each sentence's mean (every sentence weighted alike)":
                      ((picked * keep).sum(1) / keep.sum(1)).mean().item()}
        for what, wrong in wrongs.items():
            if abs(mine - wrong) <= rtol * abs(wrong) + 1e-6:
                return f": your value is {what} (use F.cross_entropy(..., ignore_index=pad_idx))"
        return " (F.cross_entropy(outputs.reshape(-1, V), targets.reshape(-1), ignore_index=pad_idx))"


# ---- train_epoch and evaluate ------------------------------------------------------------

LOADER_LENGTHS = [[5, 3, 4, 2], [4, 4, 3, 5], [2, 3, 5, 4]]  # source lengths (words + <EOS>) per batch


class TrainAndEvaluate(Check):
    """train_epoch(model, loader, AdamOptimizer(model.parameters(), lr=0.01), device,
    teacher_forcing_ratio=1.0) on a fresh model and three padded batches: a finite float near
    ln V (a fresh model's loss), the parameters changed. evaluate(model, loader, device): a
    finite float near ln V, the same twice, the parameters unchanged."""

    name = "train_and_evaluate"
    needs_reference = False

    def inputs(self, ctx):
        generator = ctx.generator()
        loader = []
        for lengths in LOADER_LENGTHS:
            src = random_batch(generator, lengths, max(lengths), V)
            tgt = torch.zeros(len(lengths), max(lengths) + 1, dtype=torch.long)
            for b, length in enumerate(lengths):
                words = src[b, :length - 1].flip(0)
                tgt[b, :length + 1] = torch.cat([torch.tensor([SOS]), words, torch.tensor([EOS])])
            loader.append([src, tgt])
        return {"loader": loader}

    @staticmethod
    def probe(student, inputs, device):
        def run():
            model = build_seq2seq(student, device, V, E, H)
            loader = [(src, tgt) for src, tgt in inputs["loader"]]
            optimizer = student.AdamOptimizer(model.parameters(), lr=0.01)
            before = [p.detach().clone() for p in model.parameters()]
            train = plain_number(student.train_epoch(model, loader, optimizer, device, teacher_forcing_ratio=1.0))
            trained = [p.detach().clone() for p in model.parameters()]
            changed = any(not torch.equal(a, b) for a, b in zip(before, trained, strict=True))
            first = plain_number(student.evaluate(model, loader, device))
            second = plain_number(student.evaluate(model, loader, device))
            unchanged = all(torch.equal(a, b.detach()) for a, b in zip(trained, model.parameters(), strict=True))
            return {"train": train, "changed": changed, "first": first, "second": second, "unchanged": unchanged}
        return student.call(run)

    def verdict(self, ctx, inputs, got, expected):
        fresh = math.log(V)
        call = "train_epoch(model, loader, AdamOptimizer(model.parameters(), lr=0.01), device, teacher_forcing_ratio=1.0)"
        value = value_of(got, f"{call} on a fresh model and 3 batches, then evaluate(model, loader, device)")
        train = require_number(value["train"], call)
        if not value["changed"]:
            raise Mismatch(f"{call} left the model's parameters unchanged: train the model you are given, one "
                           "optimizer.step() per batch", expected="updated parameters", got="the same parameters")
        if abs(train - fresh) > 1.0:
            raise Mismatch(f"{call} returned {train:.4g}; a fresh model's loss per token is near ln V = {fresh:.3f}: "
                           "return the mean of the batch losses (each one compute_loss(outputs[:, 1:], tgt[:, 1:]))",
                           expected=f"within 1 of {fresh:.3f}", got=f"{train:.4g}")
        call = "evaluate(model, loader, device)"
        first, second = require_number(value["first"], call), require_number(value["second"], call)
        if not value["unchanged"]:
            raise Mismatch(f"{call} changed the model's parameters: evaluate must not train (no optimizer step)",
                           expected="the same parameters", got="changed parameters")
        if abs(first - second) > 1e-6:
            raise Mismatch(f"{call} twice gave different losses: evaluate in model.eval() mode (no dropout) with "
                           "teacher_forcing_ratio=0 (nothing random)", expected=f"{first:.6f} again",
                           got=f"{second:.6f}")
        if abs(first - fresh) > 1.5:
            raise Mismatch(f"{call} returned {first:.4g}; after one small epoch the loss per token should still be "
                           f"near ln V = {fresh:.3f}: return the mean of the batch losses",
                           expected=f"within 1.5 of {fresh:.3f}", got=f"{first:.4g}")
        return Verdict.ok(f"train_epoch returned {train:.3f} (ln V = {fresh:.3f}) and trained the model in place; "
                          f"evaluate returned {first:.3f} twice and changed nothing")
