"""Assignment 4: a sequence-to-sequence model with additive (Bahdanau) attention that reverses
the order of the words in a sentence.

Fill in the parts marked TODO (see handout.md). The autograder imports this file and calls the
classes and functions below; keep their names, signatures, argument names and defaults.

Shapes: B batch, S source length, T target length, E embedding size, H hidden size,
L number of GRU layers, V vocabulary size. Ids are int64; padding is <PAD> = 0.

    Vocabulary()   word2idx, idx2word, word_count; <PAD>=0 <SOS>=1 <EOS>=2 <UNK>=3
        .add_sentence(words)                       adds every new word of a list of words
        .sentence_to_indices(words, add_eos=False) -> list of ids (unknown words -> <UNK>)
        .indices_to_sentence(ids)                  -> list of words (<PAD>, <SOS>, <EOS>, <UNK> dropped)
    Encoder(V, E, H, num_layers=1, dropout=0.1)(src (B, S))
                                                   -> outputs (B, S, H), hidden (L, B, H)
    BahdanauAttention(H)(decoder_hidden (B, H), encoder_outputs (B, S, H), mask=None)
                                                   -> context (B, H), weights (B, S); mask (B, S) True = padding
    Decoder(V, E, H, num_layers=1, dropout=0.1)(x (B, 1), hidden (L, B, H), encoder_outputs (B, S, H), mask=None)
                                                   -> logits (B, V), hidden (L, B, H), weights (B, S)
    Seq2SeqWithAttention(encoder, decoder)(src (B, S), tgt (B, T), teacher_forcing_ratio=0.5)
                                                   -> outputs (B, T, V) with outputs[:, 0] = 0, [weights (B, S)] * (T - 1)
    AdamOptimizer(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8)   .step(), .zero_grad()
    clip_gradients(parameters, max_norm=1.0)       -> the total gradient norm before clipping
    compute_loss(outputs (B, T, V), targets (B, T), pad_idx=0) -> scalar tensor, mean over non-pad targets
    train_epoch(model, loader, optimizer, device, teacher_forcing_ratio=0.5) -> mean training loss
    evaluate(model, loader, device)                -> mean loss without teacher forcing
    predict_with_attention(model, src_tensor (S,), vocab, max_len=20)
                                                   -> ids (list ending with <EOS>), weights (len(ids), S)
    visualize_attention(src_tokens, pred_tokens, weights (T, S), save_path="attention_heatmap.png")
"""

import random

import matplotlib.pyplot as plt
import torch
from torch import nn
from torch.nn import functional as F

PAD_IDX, SOS_IDX, EOS_IDX, UNK_IDX = 0, 1, 2, 3
SPECIALS = ["<PAD>", "<SOS>", "<EOS>", "<UNK>"]


class Vocabulary:
    """Words <-> ids. The four special tokens come first: <PAD>=0, <SOS>=1, <EOS>=2, <UNK>=3;
    every new word gets the next id, in the order the words are first seen."""

    def __init__(self):
        # TODO: the two lookup tables, starting with the four special tokens
        raise NotImplementedError('Vocabulary.__init__: the two lookup tables, starting with the four special tokens')

    def add_sentence(self, words):
        """Add every word of ``words`` (a list of str) that is not in the vocabulary yet."""
        # TODO: a new id for each unseen word; word_count is the vocabulary size
        raise NotImplementedError('Vocabulary.add_sentence: a new id for each unseen word; word_count is the vocabulary size')

    def sentence_to_indices(self, words, add_eos=False):
        """The ids of ``words`` (unknown words -> <UNK>), followed by <EOS> if ``add_eos``."""
        # TODO: look every word up, <UNK> when missing
        raise NotImplementedError('Vocabulary.sentence_to_indices: look every word up, <UNK> when missing')
        return ids

    def indices_to_sentence(self, ids):
        """The words of ``ids`` (a list of ints or a 1-D tensor), special tokens dropped."""
        words = None  # TODO: compute words
        return words


class Encoder(nn.Module):
    """Embedding -> dropout -> GRU (batch first), reading only the real tokens of each row.

    forward(src (B, S) int64, padded with <PAD> = 0 at the end) -> (outputs (B, S, H),
    hidden (num_layers, B, H)). A sentence padded inside a batch gets the same outputs at its
    real positions and the same final hidden as when it is encoded alone (the GRU stops at its
    last real token); outputs at padded positions may be anything (zeros here).
    """

    def __init__(self, vocab_size, embed_dim, hidden_dim, num_layers=1, dropout=0.1):
        super().__init__()
        # TODO: embedding (padding_idx 0), dropout, a batch-first GRU
        raise NotImplementedError('Encoder.__init__: embedding (padding_idx 0), dropout, a batch-first GRU')

    def forward(self, src):
        # TODO: embed the source, run the GRU over the real tokens only (pack the padded batch)
        raise NotImplementedError('Encoder.forward: embed the source, run the GRU over the real tokens only (pack the padded batch)')
        return outputs, hidden


class BahdanauAttention(nn.Module):
    """Additive attention: score(s, h_j) = v^T tanh(W s + U h_j).

    forward(decoder_hidden (B, H), encoder_outputs (B, S, H), mask=None (B, S), True = padding)
    -> (context (B, H), weights (B, S)); the weights are a softmax over S, exactly 0 where
    mask is True, and context is the weighted sum of the encoder outputs.
    """

    def __init__(self, hidden_dim):
        super().__init__()
        # TODO: W for the decoder state, U for the encoder outputs, v to one score
        raise NotImplementedError('BahdanauAttention.__init__: W for the decoder state, U for the encoder outputs, v to one score')

    def forward(self, decoder_hidden, encoder_outputs, mask=None):
        # TODO: scores (B, S), -inf on padding, softmax over S, weighted sum
        raise NotImplementedError('BahdanauAttention.forward: scores (B, S), -inf on padding, softmax over S, weighted sum')
        return context, weights


class Decoder(nn.Module):
    """One decoding step: attend with the top layer's hidden state, feed [embedding; context]
    to a GRU, predict the next word from [GRU output; context; embedding].

    forward(x (B, 1) int64, hidden (num_layers, B, H), encoder_outputs (B, S, H), mask=None)
    -> (logits (B, V), hidden (num_layers, B, H), weights (B, S)).
    """

    def __init__(self, vocab_size, embed_dim, hidden_dim, num_layers=1, dropout=0.1):
        super().__init__()
        self.vocab_size = vocab_size
        # TODO: embedding, dropout, attention, GRU fed [embedding; context], output layer
        raise NotImplementedError('Decoder.__init__: embedding, dropout, attention, GRU fed [embedding; context], output layer')

    def forward(self, x, hidden, encoder_outputs, mask=None):
        # TODO: attend, one GRU step, logits
        raise NotImplementedError('Decoder.forward: attend, one GRU step, logits')
        return logits, hidden, weights


class Seq2SeqWithAttention(nn.Module):
    """Encoder + attentive decoder, decoding the target one step at a time.

    forward(src (B, S), tgt (B, T), teacher_forcing_ratio=0.5) -> (outputs (B, T, V), weights),
    where outputs[:, 0] stays zero (tgt[:, 0] is <SOS>, nothing predicts it), outputs[:, t] are
    the logits for tgt[:, t], and weights is a list of the T - 1 attention weights (B, S). At
    step t the decoder input is tgt[:, t - 1] with probability teacher_forcing_ratio (one draw
    of random.random() per step), otherwise the argmax of the previous step's logits.
    """

    def __init__(self, encoder, decoder):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, src, tgt, teacher_forcing_ratio=0.5):
        B, T = tgt.shape
        outputs = torch.zeros(B, T, self.decoder.vocab_size, device=src.device)
        attentions = []
        # TODO: encode, then decode from <SOS>, choosing each next input by teacher forcing
        raise NotImplementedError('Seq2SeqWithAttention.forward: encode, then decode from <SOS>, choosing each next input by teacher forcing')
        return outputs, attentions


class AdamOptimizer:
    """Adam, written by hand (no torch.optim), updating the parameters in place.

    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  m^ = m / (1 - b1^t);  v^ = v / (1 - b2^t)
    p = p - lr m^ / (sqrt(v^) + eps). Parameters whose .grad is None are left alone.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        self.params = list(params)  # model.parameters() is a generator: keep a list
        self.lr, self.betas, self.eps = lr, betas, eps
        # TODO: the step count and the two moment estimates, one per parameter
        raise NotImplementedError('AdamOptimizer.__init__: the step count and the two moment estimates, one per parameter')

    def zero_grad(self):
        """Forget the gradients of the last backward pass."""
        # TODO: set every gradient to None
        raise NotImplementedError('AdamOptimizer.zero_grad: set every gradient to None')

    @torch.no_grad()
    def step(self):
        """One Adam update of every parameter that has a gradient."""
        # TODO: update the moments, correct their bias, move the parameters
        raise NotImplementedError('AdamOptimizer.step: update the moments, correct their bias, move the parameters')


def clip_gradients(parameters, max_norm=1.0):
    """Scale all gradients together so that their total L2 norm is at most ``max_norm``, as
    torch.nn.utils.clip_grad_norm_ does (written by hand). ``parameters`` may be a generator;
    parameters without a gradient are skipped. Returns the total norm before clipping (float)."""
    # TODO: one norm over all gradients, one common scale factor
    raise NotImplementedError('clip_gradients: one norm over all gradients, one common scale factor')
    return total_norm


def compute_loss(outputs, targets, pad_idx=0):
    """Cross-entropy of logits ``outputs`` (B, T, V) against ``targets`` (B, T), averaged over
    the target positions that are not ``pad_idx``. Returns a scalar tensor (for backward).
    Callers pass outputs[:, 1:] and tgt[:, 1:], which are not contiguous: use reshape."""
    loss = None  # TODO: compute loss
    return loss


def train_epoch(model, loader, optimizer, device, teacher_forcing_ratio=0.5):
    """One pass over ``loader`` (batches (src (B, S), tgt (B, T)) padded with 0): forward with
    teacher forcing, compute_loss on outputs[:, 1:] and tgt[:, 1:], backward, clip_gradients
    at 1.0, optimizer step. Returns the mean of the batch losses (float)."""
    # TODO: the usual loop, one optimizer step per batch
    raise NotImplementedError('train_epoch: the usual loop, one optimizer step per batch')
    return mean


def evaluate(model, loader, device):
    """Mean loss over ``loader`` in eval mode, without gradients or teacher forcing (ratio 0)."""
    # TODO: eval mode, no gradients, the model's own predictions fed back
    raise NotImplementedError("evaluate: eval mode, no gradients, the model's own predictions fed back")
    return mean


def predict_with_attention(model, src_tensor, vocab, max_len=20):
    """Greedy decoding of one unpadded source sentence ``src_tensor`` (S,) (ids ending with
    <EOS>): start from <SOS>, feed back the argmax each step, stop after producing <EOS> (or
    after ``max_len`` steps). Returns (ids, weights): ids a list of ints whose last element is
    <EOS> when it was produced, weights (len(ids), S) on the CPU, one row per step."""
    # TODO: encode once, then one decoder step per output word
    raise NotImplementedError('predict_with_attention: encode once, then one decoder step per output word')
    return ids, weights


def visualize_attention(src_tokens, pred_tokens, weights, save_path="attention_heatmap.png"):
    """Heatmap of ``weights`` (len(pred_tokens), len(src_tokens)): one column per source
    (encoder) token on the x axis, one row per predicted (decoder) token on the y axis, each
    tick labelled with its token; saved as a PNG at ``save_path``. Returns the Figure."""
    # TODO: imshow with a tick and a label per token, a colour bar, savefig
    raise NotImplementedError('visualize_attention: imshow with a tick and a label per token, a colour bar, savefig')
    return fig


WRITTEN_ANALYSIS = """
Answer each question in a few sentences, in place of its TODO line. Your instructor
grades these answers by hand; they earn no automatic points.

1. Plot the attention heatmap of one reversed sentence from your trained model. Describe
   the pattern you see and explain why reversing a sentence produces it.
TODO: your answer

2. What does teacher forcing feed the decoder at step t? Compare training with
   teacher_forcing_ratio = 1.0 and = 0.0: what does each gain and what does each risk
   when the model later decodes greedily on its own?
TODO: your answer

3. Padding must be masked twice: in the attention weights and in the loss. For each of
   the two, say what would go wrong if it were not masked.
TODO: your answer

4. How does your model's exact-match accuracy depend on the length of the sentence, and
   why? Why does attention make this task much easier than a seq2seq model that passes
   only the encoder's final hidden state to the decoder?
TODO: your answer
"""


if __name__ == "__main__":
    # Try it: learn to reverse short sentences over a tiny vocabulary, then look at one heatmap.
    torch.manual_seed(0)
    random.seed(0)
    words = "red blue green cat dog bird runs sits eats big small old".split()
    vocab = Vocabulary()
    vocab.add_sentence(words)

    def pad(rows):
        return nn.utils.rnn.pad_sequence([torch.tensor(row) for row in rows], batch_first=True, padding_value=PAD_IDX)

    sentences = [random.choices(words, k=random.randint(3, 6)) for _ in range(2000)]
    batches = []  # sentences of mixed lengths, padded with 0: the Encoder must ignore the padding
    for start in range(0, len(sentences), 32):
        chunk = sentences[start:start + 32]
        src = pad([vocab.sentence_to_indices(s, add_eos=True) for s in chunk])
        tgt = pad([[SOS_IDX] + vocab.sentence_to_indices(s[::-1], add_eos=True) for s in chunk])
        batches.append((src, tgt))
    model = Seq2SeqWithAttention(Encoder(vocab.word_count, 32, 64), Decoder(vocab.word_count, 32, 64))
    optimizer = AdamOptimizer(model.parameters(), lr=3e-3)
    for epoch in range(6):
        random.shuffle(batches)
        loss = train_epoch(model, batches, optimizer, "cpu")
        print(f"epoch {epoch + 1}: train loss {loss:.3f}, eval loss {evaluate(model, batches[:8], 'cpu'):.3f}")
    sentence = ["big", "red", "dog", "eats"]
    ids, weights = predict_with_attention(model, torch.tensor(vocab.sentence_to_indices(sentence, add_eos=True)), vocab)
    print(sentence, "->", vocab.indices_to_sentence(ids))
    visualize_attention(sentence + ["<EOS>"], [vocab.idx2word[i] for i in ids], weights)
    print("heatmap saved as attention_heatmap.png")
