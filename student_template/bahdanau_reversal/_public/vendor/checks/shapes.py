"""The `module_shapes` check: Encoder (1 and 2 layers), BahdanauAttention, Decoder (1 and 2
layers) and Seq2SeqWithAttention are each run on a padded batch in eval mode, one share per
case, and every tensor they return must have the handout's shape; Seq2SeqWithAttention must also
keep its encoder and decoder, leave outputs[:, 0] zero and return one weight tensor per step.
"""

from __future__ import annotations

import torch

from autograder.sandbox.wire import describe
from autograder.toolkit.check import Check, Verdict
from autograder.toolkit.probe import build_module
from autograder.toolkit.verdict import Mismatch, require_tensor, value_of

from .common import PAD, SOS, E, H, V, items, random_batch

# ---- shapes of every module -------------------------------------------------------------

SRC_LENGTHS = [7, 5, 3]  # (3, 7) sources padded with 0
TGT_WIDTH = 5


class ModuleShapes(Check):
    """One share per case: Encoder (1 and 2 layers), BahdanauAttention, Decoder (1 and 2
    layers), Seq2SeqWithAttention, each on a padded batch, in eval mode without gradients."""

    name = "module_shapes"
    needs_reference = False

    def inputs(self, ctx):
        generator = ctx.generator()
        src = random_batch(generator, SRC_LENGTHS, max(SRC_LENGTHS), V)
        tgt = random_batch(generator, [TGT_WIDTH] * len(SRC_LENGTHS), TGT_WIDTH, V, prefix=SOS)
        B, S = src.shape
        return {"src": src, "tgt": tgt, "decoder_hidden": torch.randn(B, H, generator=generator),
                "encoder_outputs": torch.randn(B, S, H, generator=generator),
                "hidden2": torch.randn(2, B, H, generator=generator), "x": tgt[:, :1].clone()}

    @staticmethod
    def probe(student, inputs, device):
        src, tgt = inputs["src"], inputs["tgt"]
        mask = src == PAD

        def encoder(layers):
            module = build_module(student, device, "Encoder", V, E, H, num_layers=layers).eval()
            with torch.no_grad():
                outputs, hidden = items(module(src), 2, f"Encoder(..., num_layers={layers}).forward(src)")
            return {"outputs": outputs, "hidden": hidden}

        def attention():
            module = build_module(student, device, "BahdanauAttention", H).eval()
            with torch.no_grad():
                context, weights = items(module(inputs["decoder_hidden"], inputs["encoder_outputs"], mask), 2,
                                         "BahdanauAttention.forward")
            return {"context": context, "weights": weights}

        def decoder(layers):
            module = build_module(student, device, "Decoder", V, E, H, num_layers=layers).eval()
            hidden = inputs["hidden2"][:layers].contiguous()
            with torch.no_grad():
                logits, hidden, weights = items(module(inputs["x"], hidden, inputs["encoder_outputs"], mask), 3,
                                                "Decoder.forward")
            return {"logits": logits, "hidden": hidden, "weights": weights,
                    "vocab_size": describe(getattr(module, "vocab_size", None))
                    if not isinstance(getattr(module, "vocab_size", None), int) else module.vocab_size}

        def seq2seq():
            enc = build_module(student, device, "Encoder", V, E, H)
            dec = build_module(student, device, "Decoder", V, E, H)
            model = build_module(student, device, "Seq2SeqWithAttention", enc, dec).eval()
            with torch.no_grad():
                outputs, weights = items(model(src, tgt), 2, "Seq2SeqWithAttention.forward(src, tgt)")
            listed = isinstance(weights, (list, tuple))
            return {"outputs": outputs, "weights": list(weights) if listed else weights, "listed": listed,
                    "encoder": getattr(model, "encoder", None) is enc, "decoder": getattr(model, "decoder", None) is dec}

        return {"Encoder(13, 8, 16)": student.call(encoder, 1), "Encoder(13, 8, 16, num_layers=2)": student.call(encoder, 2),
                "BahdanauAttention(16)": student.call(attention), "Decoder(13, 8, 16)": student.call(decoder, 1),
                "Decoder(13, 8, 16, num_layers=2)": student.call(decoder, 2),
                "Seq2SeqWithAttention(Encoder(13, 8, 16), Decoder(13, 8, 16))": student.call(seq2seq)}

    def verdict(self, ctx, inputs, got, expected):
        B, S = inputs["src"].shape
        T = inputs["tgt"].shape[1]
        problems, shown = [], []
        for case, record in got.items():
            try:
                value = value_of(record, case)
                if case.startswith("Encoder"):
                    layers = 2 if "num_layers=2" in case else 1
                    require_tensor(value["outputs"], f"{case}: outputs of forward(src {(B, S)})", shape=(B, S, H))
                    require_tensor(value["hidden"], f"{case}: hidden of forward(src {(B, S)}) (num_layers, B, H)",
                                   shape=(layers, B, H))
                elif case.startswith("Bahdanau"):
                    require_tensor(value["context"], f"{case}: context (B, H)", shape=(B, H))
                    require_tensor(value["weights"], f"{case}: weights (B, S)", shape=(B, S))
                elif case.startswith("Decoder"):
                    layers = 2 if "num_layers=2" in case else 1
                    call = f"{case}.forward(x {(B, 1)}, hidden {(layers, B, H)}, encoder_outputs {(B, S, H)}, mask)"
                    require_tensor(value["logits"], f"{call}: logits (B, V)", shape=(B, V))
                    require_tensor(value["hidden"], f"{call}: hidden (num_layers, B, H)", shape=(layers, B, H))
                    require_tensor(value["weights"], f"{call}: weights (B, S)", shape=(B, S))
                    if value["vocab_size"] != V:
                        raise Mismatch(f"{case} should keep the vocabulary size as the attribute `vocab_size` "
                                       "(Seq2SeqWithAttention reads it to size its outputs)", expected=str(V),
                                       got=str(value["vocab_size"]))
                else:
                    self.require_seq2seq(case, value, B, S, T)
                shown.append(case.split("(")[0] + ("(2 layers)" if "num_layers=2" in case else ""))
            except Mismatch as failure:
                problems.append(failure)
        total = len(got)
        if not problems:
            return Verdict.ok(f"all {total} cases have the shapes of the handout (src {(B, S)}, tgt {(B, T)}, "
                              f"V={V}, E={E}, H={H})")
        first = problems[0]
        return Verdict.partial(total - len(problems), total, f"{total - len(problems)} of {total} cases right; first "
                               f"problem: {first.message}", expected=first.expected, got=first.got)

    @staticmethod
    def require_seq2seq(case: str, value: dict, B: int, S: int, T: int) -> None:
        for part in ("encoder", "decoder"):
            if not value[part]:
                raise Mismatch(f"{case} should keep the {part} it is given as the attribute `{part}` "
                               "(predict_with_attention uses model.encoder and model.decoder)",
                               expected=f"model.{part} is the {part} passed in", got="another object or none")
        call = f"{case}.forward(src {(B, S)}, tgt {(B, T)})"
        outputs = require_tensor(value["outputs"], f"{call}: outputs (B, T, V)", shape=(B, T, V))
        if outputs[:, 0].abs().max() != 0:
            raise Mismatch(f"{call}: outputs[:, 0] should stay zeros (tgt[:, 0] is <SOS>, which nothing predicts; the "
                           "decoder's first step fills outputs[:, 1])", expected="outputs[:, 0] == 0",
                           got=f"max |outputs[:, 0]| = {outputs[:, 0].abs().max().item():.3g}")
        weights = value["weights"]
        if not value["listed"] or len(weights) != T - 1:
            raise Mismatch(f"{call} should return the attention weights of each decoding step as a list of T - 1 = "
                           f"{T - 1} tensors (B, S)", expected=f"a list of {T - 1} tensors of shape {(B, S)}",
                           got=describe(weights) if not value["listed"] else f"a list of {len(weights)} items")
        for step, step_weights in enumerate(weights, start=1):
            require_tensor(step_weights, f"{call}: weights of step {step}", shape=(B, S))
