"""The `teacher_forcing` check: Seq2SeqWithAttention with teacher_forcing_ratio 1.0 feeds
tgt[:, t-1] at step t (changing one target moves exactly the next step's logits), with 0.0 the
previous argmax (the targets after <SOS> do not matter), and both equal the grader's own step
loop over the student's encoder and decoder.
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

from .common import PAD, SOS, E, H, V, build_seq2seq, items, random_batch

# ---- teacher forcing ---------------------------------------------------------------------

FORCING_CHANGED = 3  # tgt[:, 3] is changed in the second target batch


def grader_loop(model, src, tgt, feed_targets: bool) -> torch.Tensor:
    """(B, T, V) logits from the grader's own decoding loop over the student's encoder and
    decoder: hidden from the encoder, step t fed tgt[:, t-1] or the previous argmax (probe side)."""
    encoder_outputs, hidden = items(model.encoder(src), 2, "Encoder.forward(src)")
    mask = src == PAD
    B, T = tgt.shape
    outputs, x = None, tgt[:, :1]
    for t in range(1, T):
        logits, hidden, _ = items(model.decoder(x, hidden, encoder_outputs, mask), 3, "Decoder.forward")
        if outputs is None:
            outputs = torch.zeros(B, T, logits.shape[-1], device=logits.device, dtype=logits.dtype)
        outputs[:, t] = logits
        x = tgt[:, t:t + 1] if feed_targets else logits.argmax(dim=-1, keepdim=True)
    return outputs


class TeacherForcing(Check):
    """Seq2SeqWithAttention in eval mode on sources without padding, with targets tgt and tgt'
    that differ only at position 3. With teacher_forcing_ratio=1.0 the logits of steps 1..3
    must not change and those of step 4 must (step t is fed tgt[:, t-1]); with ratio 0.0 the
    targets after <SOS> must not matter. Both must also equal the grader's own step loop over
    the student's encoder and decoder (fed the targets, or the previous step's argmax)."""

    name = "teacher_forcing"
    needs_reference = False

    def inputs(self, ctx):
        generator = ctx.generator()
        B, S, T = 3, 6, 7
        src = random_batch(generator, [S] * B, S, V)
        tgt = random_batch(generator, [T] * B, T, V, prefix=SOS)
        changed = tgt.clone()
        changed[:, FORCING_CHANGED] = 4 + (tgt[:, FORCING_CHANGED] - 4 + torch.randint(1, V - 4, (B,), generator=generator)) % (V - 4)
        return {"src": src, "tgt": tgt, "changed": changed}

    @staticmethod
    def probe(student, inputs, device):
        def run():
            model = build_seq2seq(student, device, V, E, H).eval()
            src, results = inputs["src"], {}
            with torch.no_grad():
                for ratio in (1.0, 0.0):
                    for key in ("tgt", "changed"):
                        outputs = items(model(src, inputs[key], teacher_forcing_ratio=ratio), 2,
                                        "Seq2SeqWithAttention.forward")[0]
                        results[f"{key} {ratio:g}"] = outputs
                results["loop targets"] = grader_loop(model, src, inputs["tgt"], True)
                results["loop argmax"] = grader_loop(model, src, inputs["tgt"], False)
            return results
        return student.call(run)

    def verdict(self, ctx, inputs, got, expected):
        value = value_of(got, "Seq2SeqWithAttention(Encoder(13, 8, 16), Decoder(13, 8, 16)) in eval mode")
        B, T = inputs["tgt"].shape
        k, atol, change = FORCING_CHANGED, ctx.threshold("forcing_atol"), ctx.threshold("forcing_min_change")
        call = "model(src, tgt, teacher_forcing_ratio={})"
        for key, outputs in value.items():
            if not key.startswith("loop"):
                require_tensor(outputs, f"the outputs of {call.format(key.split()[1])}", shape=(B, T, V))
                require_finite(outputs, f"the outputs of {call.format(key.split()[1])}")

        def moved(a, b, steps):
            return max_abs_error(a[:, steps], b[:, steps])

        forced, forced_changed = value["tgt 1"], value["changed 1"]
        free, free_changed = value["tgt 0"], value["changed 0"]
        free_depends = moved(free, free_changed, slice(1, T)) > change
        if moved(forced, forced_changed, slice(1, T)) <= change:
            hint = (": it looks inverted, since with ratio 0.0 they do matter; use the target when random.random() < "
                    "teacher_forcing_ratio" if free_depends else ": feed tgt[:, t - 1] as the input of step t when "
                    "random.random() < teacher_forcing_ratio")
            raise Mismatch(f"{call.format(1.0)}: changing tgt[:, {k}] changes no output, so the targets are not fed "
                           f"to the decoder{hint}", expected=f"outputs[:, {k + 1}] to change",
                           got="no change at any step")
        early = moved(forced, forced_changed, slice(1, k + 1))
        if early > atol:
            raise Mismatch(f"{call.format(1.0)}: changing tgt[:, {k}] changes the outputs of steps 1..{k}: step t may "
                           f"only see tgt[:, 0..t-1]; its input is tgt[:, t - 1], not tgt[:, t]",
                           expected=f"outputs[:, 1:{k + 1}] unchanged", got=f"max change {early:.3g}")
        if moved(forced, forced_changed, slice(k + 1, k + 2)) <= change:
            raise Mismatch(f"{call.format(1.0)}: changing tgt[:, {k}] does not change outputs[:, {k + 1}]: the input "
                           f"of step t is tgt[:, t - 1]", expected=f"outputs[:, {k + 1}] to change",
                           got=f"changes per step {[round(moved(forced, forced_changed, slice(t, t + 1)), 4) for t in range(T)]}")
        if free_depends:
            raise Mismatch(f"{call.format(0.0)}: changing tgt[:, {k}] changes the outputs, so targets are fed with "
                           "ratio 0.0: without teacher forcing the decoder is fed the argmax of its previous step",
                           expected="no change", got=f"max change {moved(free, free_changed, slice(1, T)):.3g}")
        for outputs, loop, ratio, what in ((forced, value["loop targets"], 1.0, "fed tgt[:, t - 1] at step t"),
                                           (free, value["loop argmax"], 0.0, "fed the argmax of step t - 1")):
            loop = require_tensor(loop, "the grader's loop over your encoder and decoder", shape=(B, T, V))
            if not within_tolerance(outputs[:, 1:], loop[:, 1:], atol, 0.0):
                raise Mismatch(f"{call.format(ratio)} differs from the grader's loop over your encoder and decoder "
                               f"({what}, starting from <SOS> = tgt[:, 0] and the encoder's hidden state, mask = "
                               "src == 0, outputs[:, t] = the logits of step t)", expected=f"max abs error <= {atol:g}",
                               got=f"max abs error {max_abs_error(outputs[:, 1:], loop[:, 1:]):.3g}")
        return Verdict.ok(f"with ratio 1.0 step t is fed tgt[:, t-1] (changing tgt[:, {k}] moves step {k + 1} and "
                          "nothing before); with ratio 0.0 the previous argmax; both equal the grader's step loop over "
                          "your encoder and decoder")
