"""The `encoder_ignores_padding` check: the Encoder (1 and 2 layers) must give each sentence of a
padded batch the same outputs at its real positions, and the same final hidden, as the sentence
encoded alone, as a GRU that reads only the real tokens (a packed batch) does. The hint tells
apart a hidden state that read the padding from outputs that depend on the batch.
"""

from __future__ import annotations

import torch

from autograder.toolkit.check import Check, Verdict
from autograder.toolkit.probe import build_module
from autograder.toolkit.verdict import (
    Mismatch,
    max_abs_error,
    require_tensor,
    value_of,
    within_tolerance,
)

from .common import E, H, V, items, random_batch

# ---- the encoder ignores padding ---------------------------------------------------------

PADDING_LENGTHS = [4, 7, 2, 5, 3]  # real tokens per row (words, then <EOS>), in no order; padded with 0 to 7
PACKING = ("derive the lengths from the ids, lengths = (src != 0).sum(dim=1) (<PAD> = 0), pack the embedded batch "
           "with nn.utils.rnn.pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False), "
           "run the GRU on the packed sequence and unpack its outputs with nn.utils.rnn.pad_packed_sequence(..., "
           "batch_first=True, total_length=S) (or any equivalent way of stopping the GRU at each sentence's last real "
           "token)")


class EncoderIgnoresPadding(Check):
    """Encoder(13, 8, 16, num_layers=L, dropout=0.0) in eval mode, L = 1 and 2, on a batch of
    five sentences of mixed lengths (in no order) padded with 0 at the end, and on each sentence
    alone (B = 1, no padding): at each sentence's real positions the outputs, and the final
    hidden of every layer, must be the same both ways, as they are when the GRU reads only the
    real tokens (a packed batch). Outputs at padded positions are not judged."""

    name = "encoder_ignores_padding"
    needs_reference = False

    def inputs(self, ctx):
        return {"src": random_batch(ctx.generator(), PADDING_LENGTHS, max(PADDING_LENGTHS), V)}

    @staticmethod
    def probe(student, inputs, device):
        src = inputs["src"]

        def run(layers):
            module = build_module(student, device, "Encoder", V, E, H, num_layers=layers, dropout=0.0).eval()
            what = f"Encoder(..., num_layers={layers}).forward"
            with torch.no_grad():
                outputs, hidden = items(module(src), 2, f"{what}(src)")
                alone = []
                for b, length in enumerate(PADDING_LENGTHS):
                    one_outputs, one_hidden = items(module(src[b:b + 1, :length].clone()), 2, f"{what}(one sentence)")
                    alone.append({"outputs": one_outputs, "hidden": one_hidden})
            return {"outputs": outputs, "hidden": hidden, "alone": alone}

        return [student.call(run, layers) for layers in (1, 2)]

    def verdict(self, ctx, inputs, got, expected):
        B, S = inputs["src"].shape
        atol = ctx.threshold("padding_atol")
        setting = (f"a batch src {(B, S)} of {B} sentences of lengths {', '.join(map(str, PADDING_LENGTHS))} (words, "
                   f"then <EOS>), padded with 0 at the end, and each sentence alone (B = 1, no padding)")
        worst = 0.0
        for layers, record in zip((1, 2), got, strict=True):
            case = f"Encoder({V}, {E}, {H}, num_layers={layers}, dropout=0.0) in eval mode"
            value = value_of(record, f"{case}, on {setting}")
            outputs = require_tensor(value["outputs"], f"{case}: outputs of forward(src {(B, S)})", shape=(B, S, H))
            hidden = require_tensor(value["hidden"], f"{case}: hidden of forward(src {(B, S)}) (num_layers, B, H)",
                                    shape=(layers, B, H))
            differ = []  # (sentence, length, error at its real positions, error in hidden, the same by layer)
            for b, (length, alone) in enumerate(zip(PADDING_LENGTHS, value["alone"], strict=True)):
                call = f"{case}: forward(src[{b}:{b + 1}, :{length}]), sentence {b} alone,"
                one_outputs = require_tensor(alone["outputs"], f"{call} outputs", shape=(1, length, H))
                one_hidden = require_tensor(alone["hidden"], f"{call} hidden (num_layers, 1, H)", shape=(layers, 1, H))
                real, final = outputs[b, :length], hidden[:, b]
                same_real = within_tolerance(real, one_outputs[0], atol, 0.0)
                same_final = within_tolerance(final, one_hidden[:, 0], atol, 0.0)
                if not (same_real and same_final):
                    differ.append((b, length, max_abs_error(real, one_outputs[0]), max_abs_error(final, one_hidden[:, 0]),
                                   [max_abs_error(final[i], one_hidden[i, 0]) for i in range(layers)]))
                else:
                    worst = max(worst, max_abs_error(real, one_outputs[0]), max_abs_error(final, one_hidden[:, 0]))
            if differ:
                b, length, real_error, hidden_error, by_layer = max(differ, key=lambda row: max(row[2], row[3]))
                rows = ", ".join(str(row[0]) for row in differ)
                layered = ("" if layers == 1 else
                           " (" + ", ".join(f"layer {i}: {e:.3g}" for i, e in enumerate(by_layer)) + ")")
                raise Mismatch(f"{case}: sentence {b} of a padded batch src {(B, S)} ({length} real tokens, then "
                               f"{S - length} <PAD>) differs from the same sentence encoded alone (B = 1, no padding): "
                               f"max abs error {real_error:.3g} at its real positions of outputs, {hidden_error:.3g} in "
                               f"the final hidden{layered}; sentences that differ: {rows} (the lengths are "
                               f"{', '.join(map(str, PADDING_LENGTHS))}). {self.hint(differ, S, atol)} Fix: {PACKING}. The "
                               "outputs at padded positions are not judged (zeros from pad_packed_sequence are fine).",
                               expected=f"max abs error <= {atol:g} at the real positions and in hidden",
                               got=f"sentence {b}: {real_error:.3g} at the real positions, {hidden_error:.3g} in hidden")
        return Verdict.ok(f"num_layers 1 and 2: each of the {B} sentences (lengths "
                          f"{', '.join(map(str, PADDING_LENGTHS))}, padded with 0 to S = {S}) gets the same outputs at "
                          f"its real positions and the same final hidden inside the batch as alone (max abs error "
                          f"{worst:.2g})")

    @staticmethod
    def hint(differ: list, S: int, atol: float) -> str:
        if any(length == S for _, length, *_ in differ):
            return ("Even a sentence with no padding in the batch comes out differently: what the Encoder computes for "
                    "one sentence must not depend on the other sentences of the batch (check the lengths, and that "
                    "the rows and hidden states keep the batch's order).")
        if all(real_error <= atol for _, _, real_error, *_ in differ):
            return ("The final hidden is the state after the GRU has also read the padding, so the decoder would start "
                    "from a state that depends on how much padding the batch gave the sentence: training (padded "
                    "batches) and predict_with_attention (one unpadded sentence) disagree.")
        return ("The padding changes what the GRU computes for the real tokens: the GRU must read only the real "
                "tokens of each sentence, and the padding sits at the end.")
