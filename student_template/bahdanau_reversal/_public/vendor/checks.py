"""Visible checks of the `bahdanau_reversal` assignment (these also ship to students).

Each check: ``inputs`` (grader, seeded) -> ``probe`` (worker, calls the student) ->
``verdict`` (grader). No check needs the reference's numbers. The modules are tested for
shapes and properties the verdict can compute itself from what came back (weights that are
distributions and zero on padding, a context that is their weighted sum, outputs that depend
on the targets exactly as teacher forcing says, an encoder whose result for a sentence is the
same padded inside a batch as alone); ``AdamOptimizer`` and ``clip_gradients`` are
compared with ``torch.optim.Adam`` and ``torch.nn.utils.clip_grad_norm_`` run by the verdict
on the same numbers; greedy decoding gets a grader-made model whose next word is known; the
heatmap is read back from the figure and the PNG the student's code saved.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile

import torch
from torch import nn

from autograder.sandbox.wire import describe
from autograder.toolkit.check import Check, NoForbiddenCalls, Verdict
from autograder.toolkit.figures import (
    PNG_SIGNATURE,
    figure_data,
    png_bytes,
    require_figure,
    require_heatmap,
    require_png,
    saved_file,
)
from autograder.toolkit.probe import ContractError, build_module, plain_number
from autograder.toolkit.verdict import (
    Mismatch,
    max_abs_error,
    require_distributions,
    require_finite,
    require_tensor,
    value_of,
    within_tolerance,
)

PAD, SOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = {"<PAD>": PAD, "<SOS>": SOS, "<EOS>": EOS, "<UNK>": UNK}
V, E, H = 13, 8, 16  # the small models of the visible checks: vocabulary, embedding, hidden sizes


# ---- probe side: calling the student's code ---------------------------------------------

def items(value, count: int, what: str) -> list:
    """The ``count`` items of a tuple a forward must return, or a ContractError."""
    if not isinstance(value, (tuple, list)) or len(value) != count:
        got = f"one tensor of shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else describe(value)
        raise ContractError(f"{what} should return a tuple of {count} items", expected=f"a tuple of {count} items",
                            got=got)
    return list(value)


def build_seq2seq(student, device: str, vocab_size: int, embed_dim: int, hidden_dim: int, **options):
    """Seq2SeqWithAttention(Encoder(...), Decoder(...)) from the student's classes."""
    encoder = build_module(student, device, "Encoder", vocab_size, embed_dim, hidden_dim, **options)
    decoder = build_module(student, device, "Decoder", vocab_size, embed_dim, hidden_dim, **options)
    return build_module(student, device, "Seq2SeqWithAttention", encoder, decoder)


def id_list(value):
    """Returned ids as a list of ints where they are a list/tuple of ints or a 1-D int tensor;
    anything else unchanged, for the verdict to describe."""
    if isinstance(value, torch.Tensor) and value.dim() == 1 and not value.is_floating_point():
        return [int(i) for i in value.tolist()]
    if isinstance(value, (list, tuple)) and all(isinstance(i, int) or (isinstance(i, torch.Tensor) and i.numel() == 1
                                                                       and not i.is_floating_point()) for i in value):
        return [int(i) for i in value]
    return value


def random_batch(generator, lengths: list[int], width: int, vocab_size: int, prefix: int | None = None):
    """(B, width) ids: row b holds lengths[b] ids (words 4.., then <EOS> last when prefix is None),
    padded with 0; with ``prefix`` (<SOS>) the row starts with it instead."""
    rows = torch.zeros(len(lengths), width, dtype=torch.long)
    for b, length in enumerate(lengths):
        words = torch.randint(4, vocab_size, (length,), generator=generator)
        if prefix is None:
            words[-1] = EOS
        else:
            words[0], words[-1] = prefix, EOS
        rows[b, :length] = words
    return rows


def require_number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise Mismatch(f"{what} should return a finite number (a Python float; use loss.item())",
                       expected="a finite float", got=describe(value))
    return float(value)


# ---- the vocabulary ----------------------------------------------------------------------

FIRST, SECOND = ["the", "cat", "sat"], ["the", "dog", "sat", "down"]
UNKNOWN_SENTENCE = ["the", "dog", "barked"]
DECODE_IDS = [SOS, 4, 5, 6, EOS, PAD, PAD]


class VocabularyCheck(Check):
    """A fresh Vocabulary holds the four specials; add_sentence numbers new words 4, 5, ... in
    order of first appearance; sentence_to_indices maps unknown words to <UNK> and appends
    <EOS> only with add_eos=True; indices_to_sentence gives the words back without specials."""

    name = "vocabulary"
    needs_reference = False

    @staticmethod
    def probe(student, inputs, device):
        def snapshot(vocab):
            word2idx = getattr(vocab, "word2idx", None)
            count = getattr(vocab, "word_count", None)
            state = {"word2idx": [[str(word), index if isinstance(index, int) else describe(index)]
                                  for word, index in word2idx.items()] if isinstance(word2idx, dict) else
                     describe(word2idx), "word_count": count if isinstance(count, int) else describe(count)}
            idx2word = getattr(vocab, "idx2word", None)
            size = count if isinstance(count, int) else len(word2idx) if isinstance(word2idx, dict) else 0
            looked_up = student.call(lambda: [idx2word[index] for index in range(size)])
            state["idx2word"] = ({"ok": True, "value": [str(word) for word in looked_up["value"]]}
                                 if looked_up["ok"] else looked_up)
            return state

        def run():
            vocab = student.Vocabulary()
            fresh = snapshot(vocab)
            vocab.add_sentence(list(FIRST))
            vocab.add_sentence(list(SECOND))
            added = snapshot(vocab)
            return {"fresh": fresh, "added": added,
                    "plain": id_list(vocab.sentence_to_indices(list(UNKNOWN_SENTENCE))),
                    "eos": id_list(vocab.sentence_to_indices(list(UNKNOWN_SENTENCE), add_eos=True)),
                    "words": vocab.indices_to_sentence(list(DECODE_IDS))}
        return student.call(run)

    def verdict(self, ctx, inputs, got, expected):
        value = value_of(got, "Vocabulary()")
        self.require_state(value["fresh"], SPECIALS, "a fresh Vocabulary()")
        wanted = dict(SPECIALS)
        for word in FIRST + SECOND:
            wanted.setdefault(word, len(wanted))
        self.require_state(value["added"], wanted, f"after add_sentence({FIRST}) and add_sentence({SECOND})")
        for key, add_eos in (("plain", False), ("eos", True)):
            call = f"sentence_to_indices({UNKNOWN_SENTENCE}{', add_eos=True' if add_eos else ''})"
            right = [wanted.get(word, UNK) for word in UNKNOWN_SENTENCE] + ([EOS] if add_eos else [])
            if value[key] != right:
                hint = (" (<EOS> = 2 goes at the end only when add_eos=True)" if isinstance(value[key], list)
                        and value[key][:3] == right[:3] else " (a word not in the vocabulary becomes <UNK> = 3)")
                raise Mismatch(f"{call} after those sentences should give the ids of the words{hint}",
                               expected=str(right), got=str(value[key]) if isinstance(value[key], list)
                               else describe(value[key]))
        call = f"indices_to_sentence({DECODE_IDS})"
        inverse = {index: word for word, index in wanted.items()}
        right = [inverse[index] for index in DECODE_IDS if index > UNK]
        if value["words"] != right:
            hint = ("it should return a list of words, not one string" if isinstance(value["words"], str) else
                    "<PAD>, <SOS>, <EOS> and <UNK> are dropped")
            raise Mismatch(f"{call} should give the words back: {hint}", expected=repr(right),
                           got=repr(value["words"]) if isinstance(value["words"], (list, str)) else describe(value["words"]))
        return Verdict.ok(f"<PAD>=0 <SOS>=1 <EOS>=2 <UNK>=3; new words numbered 4.. in order of first appearance "
                          f"(word_count {len(wanted)}); unknown words -> <UNK>; add_eos appends <EOS>; "
                          "indices_to_sentence drops the specials")

    @staticmethod
    def require_state(state: dict, wanted: dict[str, int], when: str) -> None:
        if not isinstance(state["word2idx"], list):
            raise Mismatch(f"{when}: word2idx should be a dict from word to id", expected="a dict",
                           got=state["word2idx"])
        word2idx = dict(state["word2idx"])
        if word2idx != wanted:
            wrong = next((word for word in wanted if word2idx.get(word) != wanted[word]), None)
            extra = sorted(set(word2idx) - set(wanted))
            detail = (f"word2idx[{wrong!r}] = {word2idx.get(wrong, 'missing')}" if wrong is not None
                      else f"extra entries {extra[:5]}")
            raise Mismatch(f"{when}: word2idx should map <PAD>, <SOS>, <EOS>, <UNK> to 0, 1, 2, 3 and each new word "
                           f"to the next id, in order of first appearance; {detail}", expected=str(wanted)[:300],
                           got=str(word2idx)[:300])
        if state["word_count"] != len(wanted):
            raise Mismatch(f"{when}: word_count should be the size of the vocabulary", expected=str(len(wanted)),
                           got=str(state["word_count"]))
        words = value_of(state["idx2word"], f"{when}: idx2word[i] for i in range(word_count)")
        inverse = [word for word, _ in sorted(wanted.items(), key=lambda pair: pair[1])]
        if words != inverse:
            at = next(i for i, (a, b) in enumerate(zip(words, inverse, strict=False)) if a != b) \
                if len(words) == len(inverse) else min(len(words), len(inverse))
            raise Mismatch(f"{when}: idx2word should be the inverse of word2idx (idx2word[word2idx[w]] == w)",
                           expected=f"idx2word[{at}] = {inverse[at]!r}" if at < len(inverse) else str(inverse),
                           got=f"idx2word[{at}] = {words[at]!r}" if at < len(words) else str(words))


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


# ---- attention ---------------------------------------------------------------------------

ATTENTION_LENGTHS = [6, 4, 3, 1]  # real positions per row; the rest is padding


class AttentionWeights(Check):
    """BahdanauAttention(16) on a batch with padding (mask True = padding): the weights are
    distributions over S with exact zeros on padding; the context equals the weighted sum of
    the encoder outputs (computed here in float64 from the weights that came back); without a
    mask every position counts; another decoder state gives other weights."""

    name = "attention_weights"
    needs_reference = False

    def inputs(self, ctx):
        generator = ctx.generator()
        B, S = len(ATTENTION_LENGTHS), max(ATTENTION_LENGTHS)
        mask = torch.arange(S).unsqueeze(0) >= torch.tensor(ATTENTION_LENGTHS).unsqueeze(1)
        return {"decoder_hidden": torch.randn(B, H, generator=generator),
                "other_hidden": torch.randn(B, H, generator=generator),
                "encoder_outputs": torch.randn(B, S, H, generator=generator), "mask": mask}

    @staticmethod
    def probe(student, inputs, device):
        def run():
            attention = build_module(student, device, "BahdanauAttention", H).eval()
            encoder_outputs, mask = inputs["encoder_outputs"], inputs["mask"]
            results = {}
            with torch.no_grad():
                for key, query, given in (("masked", inputs["decoder_hidden"], mask),
                                          ("unmasked", inputs["decoder_hidden"], None),
                                          ("other", inputs["other_hidden"], mask)):
                    context, weights = items(attention(query, encoder_outputs, given), 2, "BahdanauAttention.forward")
                    results[key] = {"context": context, "weights": weights}
            return results
        return student.call(run)

    def verdict(self, ctx, inputs, got, expected):
        value = value_of(got, "BahdanauAttention(16)")
        mask, encoder_outputs = inputs["mask"], inputs["encoder_outputs"]
        B, S, _ = encoder_outputs.shape
        atol = ctx.threshold("attention_atol")
        for key, call in (("masked", "forward(decoder_hidden, encoder_outputs, mask)"),
                          ("unmasked", "forward(decoder_hidden, encoder_outputs) without a mask"),
                          ("other", "forward(another decoder_hidden, encoder_outputs, mask)")):
            what = f"BahdanauAttention(16).{call}"
            weights = require_distributions(value[key]["weights"], f"the weights of {what}", shape=(B, S))
            context = require_tensor(value[key]["context"], f"the context of {what}", shape=(B, H))
            require_finite(context, f"the context of {what}")
            if key != "unmasked":
                self.require_masked(weights, mask, what)
            right = torch.einsum("bs,bsh->bh", weights.to(torch.float64), encoder_outputs.to(torch.float64))
            if not within_tolerance(context, right, atol, 0.0):
                raise Mismatch(f"{what}: the context should be the weighted sum of the encoder outputs with the weights "
                               "you return, sum_j weights[b, j] * encoder_outputs[b, j] (torch.bmm(weights.unsqueeze(1), "
                               "encoder_outputs).squeeze(1))", expected=f"max abs error <= {atol:g}",
                               got=f"max abs error {max_abs_error(context, right):.3g}")
        masked, other = value["masked"]["weights"], value["other"]["weights"]
        rows = [b for b, length in enumerate(ATTENTION_LENGTHS) if length > 1]
        change = max_abs_error(masked[rows], other[rows])
        if change <= ctx.threshold("query_min_change"):
            raise Mismatch("BahdanauAttention(16): two different decoder states give the same weights: the score "
                           "v^T tanh(W s + U h_j) must depend on the decoder state s as well as on each h_j",
                           expected="weights that change with decoder_hidden", got=f"max change {change:.3g}")
        padded = int(mask.sum())
        return Verdict.ok(f"weights {(B, S)} are distributions over S, exactly 0 on all {padded} padded positions; "
                          f"the context is their weighted sum of the encoder outputs (float64, within {atol:g}); "
                          "the weights follow the decoder state")

    @staticmethod
    def require_masked(weights: torch.Tensor, mask: torch.Tensor, what: str) -> None:
        on_padding = weights[mask]
        if (on_padding != 0).any():
            if (weights[~mask] == 0).any() and (weights[mask] > 0).all():
                hint = ("your weights are zero on real positions instead: mask is True where the source is padding "
                        "(scores.masked_fill(mask, float('-inf')))")
            else:
                hint = ("set the scores of padded positions to -inf before the softmax "
                        "(scores.masked_fill(mask, float('-inf'))); a mask applied after the softmax, or a finite "
                        "penalty, leaves weight there or breaks the sum to 1")
            b, j = (int(i) for i in (mask & (weights != 0)).nonzero()[0])
            raise Mismatch(f"{what}: the weights on padded positions (mask True) must be exactly 0: {hint}",
                           expected="weights[mask] == 0", got=f"weights[{b}, {j}] = {weights[b, j].item():.3g} "
                           f"(row {b} has {ATTENTION_LENGTHS[b]} real positions)")


# ---- AdamOptimizer against torch.optim.Adam ---------------------------------------------

ADAM_SHAPES = [(4, 3), (5,), (2, 2, 2), (3,)]  # the last parameter never gets a gradient
ADAM_CASES = [  # (label, keyword arguments or None for the defaults, steps, pass a generator)
    ("AdamOptimizer([params]) with the defaults", None, 5, False),
    ("AdamOptimizer(model.parameters(), lr=0.05, betas=(0.8, 0.9), eps=1e-3)",
     {"lr": 0.05, "betas": (0.8, 0.9), "eps": 1e-3}, 6, True),
]
DEFAULTS = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8}


def adam_history(init: list, grads: list, lr: float, betas: tuple, eps: float, mistake: str | None = None) -> list:
    """The parameters after every step (float64): torch.optim.Adam when ``mistake`` is None
    (run here, in the grading process), else Adam as a common mistake computes it."""
    params = [torch.nn.Parameter(t.clone().to(torch.float64)) for t in init]
    if mistake is None:
        optimizer = torch.optim.Adam(params, lr=lr, betas=betas, eps=eps)
    beta1, beta2 = betas
    moments = [[torch.zeros_like(p), torch.zeros_like(p)] for p in params]
    history = []
    for t, step_grads in enumerate(grads, start=1):
        for p, g in zip(params, step_grads, strict=True):
            p.grad = None if g is None else g.clone().to(torch.float64)
        if mistake is None:
            optimizer.step()
        else:
            with torch.no_grad():
                for p, (m, v) in zip(params, moments, strict=True):
                    if p.grad is None:
                        continue
                    b1, b2 = (beta2, beta1) if mistake == "betas read the wrong way round (b1 for v, b2 for m)" \
                        else (beta1, beta2)
                    m.mul_(b1).add_(p.grad, alpha=1 - b1)
                    v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                    m_hat = m if mistake in ("no bias correction", "bias correction of v only") else m / (1 - b1 ** t)
                    v_hat = v if mistake in ("no bias correction", "bias correction of m only") else v / (1 - b2 ** t)
                    denominator = (v_hat + eps).sqrt() if mistake.startswith("eps inside") else v_hat.sqrt() + eps
                    p.sub_(lr * m_hat / denominator)
        history.append([p.detach().clone() for p in params])
    return history


ADAM_MISTAKES = ("no bias correction", "bias correction of m only", "bias correction of v only",
                 "eps inside the square root, sqrt(v^ + eps)", "betas read the wrong way round (b1 for v, b2 for m)")


class AdamMatchesPytorch(Check):
    """The student's AdamOptimizer and torch.optim.Adam (run by the verdict) start from the same
    float64 parameters and receive the same gradients, several steps in a row (the grader sets
    each .grad, then calls step()); the parameters must agree after every step. One parameter
    never has a gradient and must not move; after zero_grad() every gradient is None or zero.
    The second case passes a generator, as model.parameters() is, with non-default lr, betas, eps."""

    name = "adam_matches_pytorch"
    needs_reference = False

    def inputs(self, ctx):
        generator = ctx.generator()
        cases = []
        for label, kwargs, steps, as_generator in ADAM_CASES:
            init = [torch.randn(*shape, generator=generator, dtype=torch.float64) for shape in ADAM_SHAPES]
            grads = []
            for _ in range(steps):
                scale = 10 ** (torch.rand((), generator=generator, dtype=torch.float64) * 3 - 2)  # 0.01 .. 10
                grads.append([torch.randn(*shape, generator=generator, dtype=torch.float64) * scale
                              for shape in ADAM_SHAPES[:-1]] + [None])
            cases.append({"label": label, "kwargs": kwargs, "init": init, "grads": grads, "as_generator": as_generator})
        return {"cases": cases}

    @staticmethod
    def probe(student, inputs, device):
        def run(case):
            params = [torch.nn.Parameter(t.clone()) for t in case["init"]]
            given = (p for p in params) if case["as_generator"] else list(params)
            kwargs = case["kwargs"] or {}
            if "betas" in kwargs:
                kwargs = {**kwargs, "betas": tuple(kwargs["betas"])}
            optimizer = student.AdamOptimizer(given, **kwargs)
            history = []
            for step_grads in case["grads"]:
                for p, g in zip(params, step_grads, strict=True):
                    p.grad = None if g is None else g.clone()
                optimizer.step()
                history.append([p.detach().clone() for p in params])
            for p, g in zip(params, case["grads"][-1], strict=True):
                p.grad = None if g is None else g.clone()
            optimizer.zero_grad()
            after = [None if p.grad is None else p.grad.detach().clone() for p in params]
            return {"history": history, "after_zero_grad": after}
        return [student.call(run, case) for case in inputs["cases"]]

    def verdict(self, ctx, inputs, got, expected):
        atol, rtol = ctx.threshold("adam_atol"), ctx.threshold("adam_rtol")
        worst = 0.0
        for case, record in zip(inputs["cases"], got, strict=True):
            label = case["label"]
            value = value_of(record, label)
            settings = {**DEFAULTS, **(case["kwargs"] or {})}
            settings["betas"] = tuple(settings["betas"])
            right = adam_history(case["init"], case["grads"], **settings)
            history = value["history"]
            for step, (mine, theirs) in enumerate(zip(history, right, strict=True), start=1):
                for index, (p, q) in enumerate(zip(mine, theirs, strict=True)):
                    what = f"{label}: parameter {index} {tuple(q.shape)} after step {step}"
                    require_tensor(p, what, shape=tuple(q.shape))
                    if index == len(ADAM_SHAPES) - 1:
                        if not torch.equal(p.to(torch.float64), case["init"][index]):
                            raise Mismatch(f"{label}: parameter {index} never has a gradient (.grad is None) and must "
                                           f"not move, but it changed at step {step}: skip parameters whose grad is "
                                           "None", expected="unchanged",
                                           got=f"max change {max_abs_error(p, case['init'][index]):.3g}")
                        continue
                    if not within_tolerance(p, q, atol, rtol):
                        raise Mismatch(f"{what} differs from torch.optim.Adam's with the same gradients: max abs error "
                                       f"{max_abs_error(p, q):.3g}{self.hint(case, settings, history, atol, rtol)}",
                                       expected=f"max abs error <= {atol:g} + {rtol:g}·|expected|",
                                       got=f"max abs error {max_abs_error(p, q):.3g}")
                    worst = max(worst, max_abs_error(p, q))
            leftover = [index for index, grad in enumerate(value["after_zero_grad"])
                        if grad is not None and (not isinstance(grad, torch.Tensor) or grad.abs().max() != 0)]
            if leftover:
                raise Mismatch(f"{label}: after zero_grad() the gradients should be None (or zeros)",
                               expected="every .grad None or zero", got=f"non-zero .grad on parameters {leftover}")
        return Verdict.ok(f"{len(inputs['cases'])} cases ({', '.join(c['label'] for c in inputs['cases'])}): the "
                          f"parameters match torch.optim.Adam after every step (max abs error {worst:.2g}, float64); a "
                          "parameter without gradient stays put; zero_grad clears the gradients")

    @staticmethod
    def hint(case: dict, settings: dict, history: list, atol: float, rtol: float) -> str:
        if all(torch.equal(p.to(torch.float64), q) for mine in history for p, q in zip(mine, case["init"], strict=True)):
            return ("; step() changed no parameter at all" + (
                ". AdamOptimizer(model.parameters()) receives a generator, which is empty after one pass (e.g. the "
                "one that creates m and v): keep self.params = list(params)" if case["as_generator"] else ""))
        for mistake in ADAM_MISTAKES:
            wrong = adam_history(case["init"], case["grads"], mistake=mistake, **settings)
            if all(within_tolerance(p, q, atol * 10, rtol * 10) for mine, theirs in zip(history, wrong, strict=True)
                   for p, q in zip(mine[:-1], theirs[:-1], strict=True)):
                return f"; your parameters are what Adam gives with {mistake}"
        return ("; check m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g², the bias corrections m / (1 - b1^t) and "
                "v / (1 - b2^t) with t counting the steps from 1, and p -= lr m^ / (sqrt(v^) + eps)")


# ---- clip_gradients against clip_grad_norm_ ---------------------------------------------

CLIP_SHAPES = [(3, 4), (5,), (2, 3), (4,), (2,)]  # the last parameter has no gradient
CLIP_CASES = [  # (gradient norm of each parameter, max_norm or None for the default, how it is called)
    ([0.6, 0.5, 0.7, 0.4], None, "list"),          # total 1.12 > 1: clipped, though no parameter alone is
    ([2.0, 1.5, 1.0, 2.5], 5.0, "list"),           # total 3.67 < 5: left alone
    ([0.3, 0.9, 0.2, 0.6], 0.5, "generator"),      # model.parameters() is a generator
]


def clip_call(norms_case) -> str:
    _, max_norm, how = norms_case
    given = "model.parameters()" if how == "generator" else "[params]"
    return f"clip_gradients({given}{'' if max_norm is None else f', max_norm={max_norm:g}'})"


class ClipGradients(Check):
    """Five parameters (one without a gradient); the student's clip_gradients and
    torch.nn.utils.clip_grad_norm_ (run by the verdict) on the same float64 gradients: the
    returned total norm and every clipped gradient must agree. Each parameter's own norm is
    below max_norm in the first case, so clipping each parameter separately changes nothing
    there and fails."""

    name = "clip_gradients"
    needs_reference = False

    def inputs(self, ctx):
        generator = ctx.generator()
        cases = []
        for norms, max_norm, how in CLIP_CASES:
            grads = []
            for shape, norm in zip(CLIP_SHAPES, norms, strict=False):
                g = torch.randn(*shape, generator=generator, dtype=torch.float64)
                grads.append(g * norm / g.norm())
            cases.append({"grads": grads + [None], "max_norm": max_norm, "how": how})
        return {"cases": cases}

    @staticmethod
    def probe(student, inputs, device):
        def run(case):
            params = [torch.nn.Parameter(torch.zeros(*shape, dtype=torch.float64, device=device))
                      for shape in CLIP_SHAPES]
            for p, g in zip(params, case["grads"], strict=True):
                p.grad = None if g is None else g.clone()
            given = (p for p in params) if case["how"] == "generator" else list(params)
            if case["max_norm"] is None:
                total = student.clip_gradients(given)
            else:
                total = student.clip_gradients(given, max_norm=case["max_norm"])
            return {"total": plain_number(total), "grads": [None if p.grad is None else p.grad.detach().clone()
                                                      for p in params]}
        return [student.call(run, case) for case in inputs["cases"]]

    def verdict(self, ctx, inputs, got, expected):
        rtol, atol = ctx.threshold("clip_rtol"), ctx.threshold("clip_atol")
        shown = []
        for spec_case, case, record in zip(CLIP_CASES, inputs["cases"], got, strict=True):
            call = clip_call(spec_case)
            value = value_of(record, call)
            max_norm = 1.0 if case["max_norm"] is None else case["max_norm"]
            params = [torch.nn.Parameter(torch.zeros(*shape, dtype=torch.float64)) for shape in CLIP_SHAPES]
            for p, g in zip(params, case["grads"], strict=True):
                p.grad = None if g is None else g.clone()
            right_total = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
            total = value["total"]
            if isinstance(total, bool) or not isinstance(total, (int, float)):
                raise Mismatch(f"{call} should return the total norm (a float or a one-element tensor)",
                               expected=f"{right_total:.6g}", got=describe(total))
            if not math.isclose(total, right_total, rel_tol=rtol):
                hint = ""
                if math.isclose(total, right_total ** 2, rel_tol=rtol):
                    hint = ": that is the squared norm (take the square root of the sum of squares)"
                elif math.isclose(total, min(right_total, max_norm), rel_tol=rtol) and right_total > max_norm:
                    hint = ": that is the norm after clipping; return the norm before"
                raise Mismatch(f"{call} returned the wrong total norm{hint}; the total norm is the L2 norm of all "
                               "gradients together, sqrt(sum over parameters of sum(g²))",
                               expected=f"{right_total:.6g}", got=f"{total:.6g}")
            grads = value["grads"]
            for index, (mine, theirs) in enumerate(zip(grads, (p.grad for p in params), strict=True)):
                if theirs is None:
                    if mine is not None:
                        raise Mismatch(f"{call}: parameter {index} has no gradient and should keep .grad None",
                                       expected="None", got=describe(mine))
                    continue
                require_tensor(mine, f"{call}: the gradient of parameter {index}", shape=tuple(theirs.shape))
                if not within_tolerance(mine, theirs, atol, rtol):
                    raise Mismatch(f"{call}: the gradient of parameter {index} differs from clip_grad_norm_'s"
                                   f"{self.hint(case, grads, right_total, max_norm)}",
                                   expected=f"max abs error <= {atol:g} + {rtol:g}·|expected|",
                                   got=f"max abs error {max_abs_error(mine, theirs):.3g}")
            shown.append(f"total {right_total:.3f} with max_norm {max_norm:g} ({'clipped' if right_total > max_norm else 'left alone'})")
        return Verdict.ok(f"{len(shown)} cases: {'; '.join(shown)}; the returned norm and every gradient match "
                          "clip_grad_norm_")

    @staticmethod
    def hint(case: dict, grads: list, total: float, max_norm: float) -> str:
        given = [g for g in case["grads"] if g is not None]
        mine = [g for g in grads if g is not None]
        if all(torch.allclose(a, b) for a, b in zip(mine, given, strict=True)):
            if case["how"] == "generator":
                return (": nothing was clipped, though the total norm is above max_norm. `parameters` may be a "
                        "generator (model.parameters()), which is empty after the first pass: make a list first")
            return (f": nothing was clipped, though the total norm of all gradients together ({total:.4g}) is above "
                    f"max_norm ({max_norm:g}). Each parameter's own norm is below max_norm here, so clipping the "
                    "parameters one by one changes nothing: scale all gradients by the same factor "
                    "max_norm / (total_norm + 1e-6)")
        separately = [g * min(1.0, max_norm / (float(g.norm()) + 1e-6)) for g in given]
        if all(torch.allclose(a, b) for a, b in zip(mine, separately, strict=True)):
            return (": you clipped each parameter by its own norm; scale all gradients by the same factor "
                    "max_norm / total_norm")
        if total <= max_norm:
            return ": the total norm is below max_norm, so the gradients should be left unchanged"
        return ": multiply every gradient by max_norm / (total_norm + 1e-6) when that is below 1"


class FromScratch(NoForbiddenCalls):
    name = "from_scratch"


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


# ---- greedy decoding with a grader-made model --------------------------------------------

GREEDY_WORDS = ["ant", "bee", "cat", "dog", "eel", "fox", "gnu", "hen"]  # ids 4..11
GREEDY_VOCAB = 4 + len(GREEDY_WORDS)
STOPPING = {SOS: 7, 7: 5, 5: 10, 10: EOS, EOS: 9}  # <SOS> -> cat, bee, gnu, <EOS> (then fox, if one went on)
ENDLESS = {SOS: 4, 4: 6, 6: 8, 8: 4}  # <SOS> -> ant, cat, eel, ant, ... never <EOS>
GREEDY_SOURCE = [6, 9, 4, 11, EOS]
GREEDY_CASES = [("stopping", None), ("endless", 7), ("endless", None)]  # (chain, max_len or None for the default)


def chain_table(chain: dict[int, int], generator) -> torch.Tensor:
    """(V, V) logits: row x peaks at chain[x] (other rows at x + 1, never <EOS> unless chained)."""
    table = torch.rand(GREEDY_VOCAB, GREEDY_VOCAB, generator=generator)
    for x in range(GREEDY_VOCAB):
        table[x, chain.get(x, 4 + (x + 1) % len(GREEDY_WORDS))] += 5.0
    return table


class ScriptedEncoder(nn.Module):
    """The grader's encoder: outputs (B, S, H) of ones and a zero hidden state (1, B, H)."""

    def __init__(self, hidden_dim: int = 4):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, src):
        B, S = src.shape
        outputs = self.scale * torch.ones(B, S, self.hidden_dim, device=src.device)
        return outputs, torch.zeros(1, B, self.hidden_dim, device=src.device)


class ScriptedDecoder(nn.Module):
    """The grader's decoder: the logits after word x are table[x] and the weights
    softmax(attention_table[x, :S]), whatever the hidden state; hidden is passed through."""

    def __init__(self, table: torch.Tensor, attention_table: torch.Tensor):
        super().__init__()
        self.vocab_size = table.shape[0]
        self.register_buffer("table", table.clone())
        self.register_buffer("attention_table", attention_table.clone())
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x, hidden, encoder_outputs, mask=None):
        x = x.reshape(-1).long()
        weights = torch.softmax(self.attention_table[x, :encoder_outputs.shape[1]], dim=-1)
        return self.table[x] * self.scale, hidden, weights


class ScriptedSeq2Seq(nn.Module):
    """Seq2SeqWithAttention's interface around the scripted encoder and decoder."""

    def __init__(self, encoder: ScriptedEncoder, decoder: ScriptedDecoder):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(self, src, tgt, teacher_forcing_ratio=0.5):
        import random

        encoder_outputs, hidden = self.encoder(src)
        B, T = tgt.shape
        outputs = torch.zeros(B, T, self.decoder.vocab_size, device=src.device)
        x, attentions = tgt[:, :1], []
        for t in range(1, T):
            logits, hidden, weights = self.decoder(x, hidden, encoder_outputs, src == PAD)
            outputs[:, t] = logits
            attentions.append(weights)
            x = tgt[:, t:t + 1] if random.random() < teacher_forcing_ratio else logits.argmax(-1, keepdim=True)
        return outputs, attentions


def expected_decoding(table: torch.Tensor, attention_table: torch.Tensor, max_len: int, S: int):
    """(ids, weights (len(ids), S)) of greedy decoding of the scripted model (grading side)."""
    ids, rows, x = [], [], SOS
    for _ in range(max_len):
        rows.append(torch.softmax(attention_table[x, :S], dim=-1))
        x = int(table[x].argmax())
        ids.append(x)
        if x == EOS:
            break
    return ids, torch.stack(rows)


class GreedyStopsAtEos(Check):
    """predict_with_attention on a grader-made model (an nn.Module with `encoder` and `decoder`
    and Seq2SeqWithAttention's forward) whose next word depends only on the word fed in: the ids
    follow the argmax chain, end with <EOS> right after it is produced (or after max_len steps
    when it never comes, max_len 20 by default), and the weights are one row (S,) per step."""

    name = "greedy_stops_at_eos"
    needs_reference = False

    def inputs(self, ctx):
        generator = ctx.generator()
        return {"tables": {"stopping": chain_table(STOPPING, generator), "endless": chain_table(ENDLESS, generator)},
                "attention_table": 2 * torch.randn(GREEDY_VOCAB, 8, generator=generator),
                "source": torch.tensor(GREEDY_SOURCE), "cases": [list(case) for case in GREEDY_CASES]}

    @staticmethod
    def probe(student, inputs, device):
        def vocabulary():
            vocab = student.Vocabulary()
            vocab.add_sentence(list(GREEDY_WORDS))
            return vocab

        made = student.call(vocabulary)
        if not made["ok"]:
            return {"vocabulary": made}
        runs = []
        for chain, max_len in inputs["cases"]:
            model = ScriptedSeq2Seq(ScriptedEncoder(), ScriptedDecoder(inputs["tables"][chain],
                                                                       inputs["attention_table"])).to(device)
            options = {} if max_len is None else {"max_len": max_len}
            record = student.attempt("predict_with_attention", model, inputs["source"].clone(), made["value"], **options)
            if record["ok"]:
                value = record["value"]
                if isinstance(value, (tuple, list)) and len(value) == 2:
                    weights = value[1]
                    if type(weights).__module__ == "numpy":
                        weights = torch.as_tensor(weights)
                    record = {"ok": True, "value": {"ids": id_list(value[0]), "weights": weights}}
                else:
                    record = {"ok": True, "value": {"returned": describe(value)}}
            runs.append(record)
        return {"vocabulary": {"ok": True, "value": None}, "runs": runs}

    def verdict(self, ctx, inputs, got, expected):
        value_of(got["vocabulary"], f"Vocabulary() then add_sentence({GREEDY_WORDS}) (predict_with_attention's vocab)")
        source = inputs["source"]
        S = len(source)
        atol = ctx.threshold("weights_atol")
        shown = []
        for (chain, max_len), record in zip(inputs["cases"], got["runs"], strict=True):
            limit = 20 if max_len is None else max_len
            call = (f"predict_with_attention(model, src {GREEDY_SOURCE}, vocab"
                    f"{'' if max_len is None else f', max_len={max_len}'})")
            what = f"{call} on a grader-made model whose greedy path is {'cat, bee, gnu, <EOS>' if chain == 'stopping' else 'ant, cat, eel, ant, ... (never <EOS>)'}"
            value = value_of(record, what)
            if "returned" in value:
                raise Mismatch(f"{what} should return a pair (ids, weights)", expected="(ids, weights)",
                               got=value["returned"])
            ids = value["ids"]
            right, right_weights = expected_decoding(inputs["tables"][chain], inputs["attention_table"], limit, S)
            if not isinstance(ids, list):
                raise Mismatch(f"{what}: ids should be a list of ints (or a 1-D tensor of ids)",
                               expected=str(right), got=describe(ids))
            if ids != right:
                raise Mismatch(f"{what}: {self.hint(ids, right, limit)}", expected=str(right), got=str(ids)[:200])
            weights = value["weights"]
            require_tensor(weights, f"{what}: weights (one row per produced id, S = {S} columns)", shape=(len(right), S))
            if not within_tolerance(weights, right_weights, atol, 0.0):
                raise Mismatch(f"{what}: row t of the weights should be the attention weights the decoder returned at "
                               "step t", expected="the decoder's weights, in order",
                               got=f"max abs error {max_abs_error(weights, right_weights):.3g}")
            shown.append(f"{len(ids)} ids" + (" ending with <EOS>" if ids and ids[-1] == EOS else f" (max_len {limit})"))
        return Verdict.ok(f"{len(shown)} cases: {', '.join(shown)}; each id is the argmax after the previous one, and "
                          "one weight row per step")

    @staticmethod
    def hint(ids: list[int], right: list[int], limit: int) -> str:
        if ids[:1] == [SOS] and ids[1:] == right[:len(ids) - 1]:
            return "ids should hold the produced words only, not the <SOS> fed in first"
        if right[-1] == EOS and ids[:len(right)] == right and len(ids) > len(right):
            return ("decoding went on after <EOS> was produced: stop right after appending <EOS>, which is the last "
                    "element of ids")
        if right[-1] == EOS and ids == right[:-1]:
            return "<EOS> should be the last element of ids: append it, then stop"
        if right[-1] != EOS and len(ids) != limit and ids == right[:len(ids)]:
            return f"without <EOS> decoding stops after max_len = {limit} steps"
        step = next((i for i, (a, b) in enumerate(zip(ids, right, strict=False)) if a != b), min(len(ids), len(right)))
        return (f"id {step} should be the argmax of the logits after feeding back id {step - 1} "
                "(greedy: start from <SOS>, feed each argmax back)" if step else
                "the first id should be the argmax after feeding <SOS> (vocab.word2idx['<SOS>'] = 1)")


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
