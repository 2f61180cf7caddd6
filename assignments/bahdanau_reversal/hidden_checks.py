"""Hidden checks of the `bahdanau_reversal` assignment (grader only).

``trained_reversal``: the grading process draws sentences from the grading seed over a word list
that lives only in this file (training sentences, and held-out sentences that never occur in
the training set). The probe builds the student's Vocabulary from the words in the grader's
order (their ids must agree with the grader's encoding), builds the model from the student's
classes with the sizes in ``[budgets]``, trains it with the student's ``train_epoch`` and
``AdamOptimizer`` for a fixed number of epochs (a fixed, seeded batch order), and decodes each
held-out source with the student's ``predict_with_attention``. Only the held-out sources travel
to the worker; the reversed targets are built here and the exact-match accuracy is computed in
the verdict.

Each epoch the training sentences are shuffled and cut into batches of mixed lengths, each
padded with <PAD> = 0 to its longest sentence (what a DataLoader with a padding collate_fn
gives); the batch order is fixed by the grading seed. Held-out sentences are decoded one at a
time, unpadded. So the model is graded as students train it: an Encoder whose GRU runs over
the padding (the visible check ``encoder_ignores_padding``) starts decoding, in training, from
states that depend on the batch's padding, and from another state at test time.
"""

from __future__ import annotations

import math

import torch

from autograder.sandbox.wire import describe
from autograder.toolkit.check import Check, Verdict, derive_seed
from autograder.toolkit.probe import ContractError, plain_number
from autograder.toolkit.verdict import value_of

from .checks import EOS, PAD, SOS, build_seq2seq, id_list

WORDS = ["maple", "river", "stone", "cloud", "ember", "flint", "grove", "harbor", "ivory", "juniper",
         "kettle", "lantern", "meadow", "nickel", "orchid", "pebble", "quartz", "saddle", "thistle", "willow"]


LOW_LOSS = 0.1  # a last training loss below this is a model that fits its training batches (for the hint only)


def draw_sentences(generator: torch.Generator, count: int, low: int, high: int) -> list[list[int]]:
    """``count`` sentences of low..high words (ids 4.., uniformly, with replacement)."""
    sentences = []
    for _ in range(count):
        length = int(torch.randint(low, high + 1, (1,), generator=generator))
        sentences.append([4 + int(i) for i in torch.randint(0, len(WORDS), (length,), generator=generator)])
    return sentences


def pad(rows: list[list[int]]) -> torch.Tensor:
    width = max(len(row) for row in rows)
    return torch.tensor([row + [PAD] * (width - len(row)) for row in rows], dtype=torch.long)


def reversal_target(source: list[int]) -> list[int]:
    """What predict_with_attention must return for a source sentence (words only): the words
    reversed, then <EOS>."""
    return source[::-1] + [EOS]


class TrainedReversal(Check):
    name = "trained_reversal"
    needs_reference = False

    def inputs(self, ctx):
        generator = ctx.generator("data")
        low, high = ctx.budget("min_words"), ctx.budget("max_words")
        train = draw_sentences(generator, ctx.budget("train_examples"), low, high)
        seen, held = {tuple(sentence) for sentence in train}, []
        while len(held) < ctx.budget("heldout_examples"):
            sentence = draw_sentences(generator, 1, low, high)[0]
            if tuple(sentence) not in seen:
                seen.add(tuple(sentence))
                held.append(sentence)
        return {"words": list(WORDS), "train_src": pad([s + [EOS] for s in train]),
                "train_tgt": pad([[SOS] + s[::-1] + [EOS] for s in train]),
                "lengths": torch.tensor([len(s) for s in train]),
                "held_src": [torch.tensor(s + [EOS]) for s in held],
                "sizes": {key: ctx.budget(key) for key in ("embed_dim", "hidden_dim", "dropout")},
                "schedule": {key: ctx.budget(key) for key in ("batch_size", "epochs", "lr", "finetune_epochs",
                                                               "finetune_lr", "teacher_forcing_ratio", "max_len")},
                "shuffle_seed": derive_seed(ctx.seed, self.name, "shuffle")}

    @staticmethod
    def probe(student, inputs, device):
        """The grader's schedule with the student's code: the same work for every submission."""
        return student.call(TrainedReversal.train_and_predict, student, inputs, device)

    @staticmethod
    def train_and_predict(student, inputs, device):
        words = list(inputs["words"])
        vocab = student.Vocabulary()
        vocab.add_sentence(words)
        word2idx = getattr(vocab, "word2idx", None)
        ids = [word2idx.get(word) if isinstance(word2idx, dict) else None for word in words]
        if ids != list(range(4, 4 + len(words))):
            wrong = next(i for i, index in enumerate(ids) if index != 4 + i)
            raise ContractError("Vocabulary().add_sentence(words) should number the words 4, 5, ... in order of first "
                                "appearance (after <PAD>, <SOS>, <EOS>, <UNK>), as the grader's data is encoded",
                                expected=f"word2idx[{words[wrong]!r}] = {4 + wrong}",
                                got=f"word2idx[{words[wrong]!r}] = {describe(ids[wrong])}")
        vocab_size = 4 + len(words)
        sizes, schedule = inputs["sizes"], inputs["schedule"]
        model = build_seq2seq(student, device, vocab_size, sizes["embed_dim"], sizes["hidden_dim"],
                              dropout=sizes["dropout"])
        src, tgt, lengths = inputs["train_src"], inputs["train_tgt"], inputs["lengths"].tolist()
        shuffle = torch.Generator().manual_seed(inputs["shuffle_seed"])

        def loader():
            """One epoch: the sentences shuffled and cut into batches of mixed lengths, each padded
            with 0 to its longest sentence (src: words + <EOS>; tgt: <SOS> + words + <EOS>)."""
            order = torch.randperm(len(lengths), generator=shuffle).tolist()
            size = schedule["batch_size"]
            batches = [order[start:start + size] for start in range(0, len(order), size)]
            widths = [max(lengths[index] for index in batch) for batch in batches]
            return [(src[batch, :width + 1], tgt[batch, :width + 2]) for batch, width in zip(batches, widths, strict=True)]

        losses = []
        for epochs, lr in ((schedule["epochs"], schedule["lr"]), (schedule["finetune_epochs"], schedule["finetune_lr"])):
            optimizer = student.AdamOptimizer(model.parameters(), lr=lr)
            for _ in range(epochs):
                losses.append(plain_number(student.train_epoch(model, loader(), optimizer, device,
                                                         teacher_forcing_ratio=schedule["teacher_forcing_ratio"])))
        predictions = []
        for source in inputs["held_src"]:
            returned = student.predict_with_attention(model, source.clone(), vocab, max_len=schedule["max_len"])
            if not isinstance(returned, (tuple, list)) or len(returned) != 2:
                raise ContractError("predict_with_attention should return a pair (ids, weights)",
                                    expected="(ids, weights)", got=describe(returned))
            predicted = id_list(returned[0])
            if not isinstance(predicted, list):
                raise ContractError("predict_with_attention should return ids as a list of ints (or a 1-D tensor)",
                                    expected="a list of ints", got=describe(predicted))
            predictions.append(predicted)
        return {"losses": [loss if isinstance(loss, (int, float)) else describe(loss) for loss in losses],
                "predictions": predictions}

    def metrics(self, ctx, inputs, got) -> dict[str, float]:
        """Held-out exact-match accuracy (the whole list of ids, <EOS> included) and the share of
        held-out sentences whose first word is right."""
        got = value_of(got, "training with your train_epoch and AdamOptimizer, then predict_with_attention")
        targets = [reversal_target(source.tolist()[:-1]) for source in inputs["held_src"]]
        predictions = got["predictions"]
        exact = sum(p == t for p, t in zip(predictions, targets, strict=True)) / len(targets)
        first = sum(p[:1] == t[:1] for p, t in zip(predictions, targets, strict=True)) / len(targets)
        return {"exact match": exact, "first word right": first}

    def verdict(self, ctx, inputs, got, expected):
        values = self.metrics(ctx, inputs, got)
        got = got["value"]
        threshold = ctx.threshold("min_accuracy")
        sizes, schedule = inputs["sizes"], inputs["schedule"]
        vocab_size, count = 4 + len(inputs["words"]), len(inputs["held_src"])
        losses = got["losses"]
        trend = ", ".join(f"{loss:.3f}" if isinstance(loss, (int, float)) else str(loss) for loss in losses)
        text = (f"exact-match accuracy {values['exact match']:.1%} on {count} held-out sentences (first word right in "
                f"{values['first word right']:.1%}) after the grader's schedule: Seq2SeqWithAttention(Encoder({vocab_size}, "
                f"{sizes['embed_dim']}, {sizes['hidden_dim']}, dropout={sizes['dropout']:g}), Decoder(...)) trained by your "
                f"train_epoch for {schedule['epochs']} epochs with AdamOptimizer(lr={schedule['lr']:g}), then "
                f"{schedule['finetune_epochs']} with a fresh AdamOptimizer(lr={schedule['finetune_lr']:g}), "
                f"{len(inputs['lengths'])} training sentences of {ctx.budget('min_words')}..{ctx.budget('max_words')} "
                f"words in shuffled batches of up to {schedule['batch_size']} sentences of mixed lengths padded with 0, "
                f"teacher_forcing_ratio={schedule['teacher_forcing_ratio']:g}; "
                f"your train_epoch returned {trend}")
        if values["exact match"] < threshold:
            return Verdict.fail(f"{text}; the threshold is {threshold:.0%}. {self.hint(inputs, got, losses)}",
                                expected=f">= {threshold:.0%}", got=f"{values['exact match']:.1%}")
        return Verdict.ok(f"{text}; threshold {threshold:.0%}")

    @staticmethod
    def hint(inputs: dict, got: dict, losses: list) -> str:
        targets = [reversal_target(source.tolist()[:-1]) for source in inputs["held_src"]]
        pairs = list(zip(got["predictions"], targets, strict=True))
        went_on = sum(len(p) > len(t) and p[:len(t)] == t for p, t in pairs)
        if went_on:
            return (f"{went_on} predictions are right up to <EOS> but go on after it: predict_with_attention must stop "
                    "right after producing <EOS>")
        numbers = [loss for loss in losses if isinstance(loss, (int, float))]
        if len(numbers) == len(losses) and numbers and not all(math.isfinite(x) for x in numbers):
            return "The training loss became NaN or infinite: check compute_loss, clip_gradients and AdamOptimizer"
        if numbers and numbers[-1] > 0.5 * numbers[0]:
            return ("The training loss hardly fell: check that train_epoch takes one AdamOptimizer step per batch "
                    "after clip_gradients, and that the decoder is fed tgt[:, t-1] when teacher forcing")
        shown = next(((p, t) for p, t in pairs if p != t), None)
        example = f" (e.g. expected {shown[1]}, got {shown[0][:12]})" if shown else ""
        fell = f" from {numbers[0]:.2f} to {numbers[-1]:.2f}" if numbers else ""
        if numbers and numbers[-1] < LOW_LOSS:
            return (f"Training lowered the loss{fell}, as low as a correct model's (the reference ends near 0.02), yet "
                    "greedy decoding of the unpadded held-out sentences fails: the model behaves differently when it "
                    "trains (batches of mixed lengths padded with 0) and when predict_with_attention decodes one "
                    "unpadded sentence. Make sure the visible check encoder_ignores_padding passes (an Encoder whose "
                    "GRU runs over the padding hands the decoder a state that depends on the padding), and that "
                    "predict_with_attention encodes, masks and calls the decoder as Seq2SeqWithAttention.forward does, "
                    f"in eval mode{example}")
        return (f"Training lowered the loss{fell}, but not far enough for greedy decoding to reverse most held-out "
                "sentences (the reference ends near 0.02). Make sure the visible checks of AdamOptimizer (bias "
                "correction), clip_gradients, compute_loss, teacher forcing and encoder_ignores_padding pass; then "
                "check that predict_with_attention decodes in eval mode from <SOS>, feeding back each argmax"
                f"{example}")
