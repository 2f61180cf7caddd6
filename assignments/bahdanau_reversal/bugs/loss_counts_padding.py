# known bug: compute_loss averages the cross-entropy over every position, padding included (no ignore_index) | caught by: compute_loss

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
        # BEGIN SOLUTION: the two lookup tables, starting with the four special tokens
        self.word2idx = {word: index for index, word in enumerate(SPECIALS)}
        self.idx2word = {index: word for index, word in enumerate(SPECIALS)}
        self.word_count = len(SPECIALS)
        # END SOLUTION

    def add_sentence(self, words):
        """Add every word of ``words`` (a list of str) that is not in the vocabulary yet."""
        # BEGIN SOLUTION: a new id for each unseen word; word_count is the vocabulary size
        for word in words:
            if word not in self.word2idx:
                self.word2idx[word] = self.word_count
                self.idx2word[self.word_count] = word
                self.word_count += 1
        # END SOLUTION

    def sentence_to_indices(self, words, add_eos=False):
        """The ids of ``words`` (unknown words -> <UNK>), followed by <EOS> if ``add_eos``."""
        # BEGIN SOLUTION: look every word up, <UNK> when missing
        ids = [self.word2idx.get(word, UNK_IDX) for word in words]
        if add_eos:
            ids.append(EOS_IDX)
        # END SOLUTION
        return ids

    def indices_to_sentence(self, ids):
        """The words of ``ids`` (a list of ints or a 1-D tensor), special tokens dropped."""
        words = [self.idx2word[int(index)] for index in ids if int(index) not in (PAD_IDX, SOS_IDX, EOS_IDX, UNK_IDX)]  # SOLUTION
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
        # BEGIN SOLUTION: embedding (padding_idx 0), dropout, a batch-first GRU
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_IDX)
        self.dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(embed_dim, hidden_dim, num_layers, batch_first=True,
                          dropout=dropout if num_layers > 1 else 0.0)
        # END SOLUTION

    def forward(self, src):
        # BEGIN SOLUTION: embed the source, run the GRU over the real tokens only (pack the padded batch)
        # Packing stops the GRU at each row's last real token. Run over the padding, the final
        # hidden (the decoder's first state) would depend on how much padding the batch gave the
        # sentence, so training (padded batches) and predict_with_attention (one unpadded
        # sentence) would start decoding from different states.
        S = src.shape[1]
        lengths = (src != PAD_IDX).sum(dim=1).clamp(min=1).cpu()  # real tokens per row (pad id 0)
        embedded = self.dropout(self.embedding(src))  # (B, S, E)
        packed = nn.utils.rnn.pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
        packed_outputs, hidden = self.gru(packed)  # hidden (L, B, H), in the batch's own row order
        outputs, _ = nn.utils.rnn.pad_packed_sequence(packed_outputs, batch_first=True, total_length=S)
        # END SOLUTION
        return outputs, hidden


class BahdanauAttention(nn.Module):
    """Additive attention: score(s, h_j) = v^T tanh(W s + U h_j).

    forward(decoder_hidden (B, H), encoder_outputs (B, S, H), mask=None (B, S), True = padding)
    -> (context (B, H), weights (B, S)); the weights are a softmax over S, exactly 0 where
    mask is True, and context is the weighted sum of the encoder outputs.
    """

    def __init__(self, hidden_dim):
        super().__init__()
        # BEGIN SOLUTION: W for the decoder state, U for the encoder outputs, v to one score
        self.W = nn.Linear(hidden_dim, hidden_dim, bias=False)
        self.U = nn.Linear(hidden_dim, hidden_dim)
        self.v = nn.Linear(hidden_dim, 1, bias=False)
        # END SOLUTION

    def forward(self, decoder_hidden, encoder_outputs, mask=None):
        # BEGIN SOLUTION: scores (B, S), -inf on padding, softmax over S, weighted sum
        scores = self.v(torch.tanh(self.W(decoder_hidden).unsqueeze(1) + self.U(encoder_outputs))).squeeze(-1)
        if mask is not None:
            scores = scores.masked_fill(mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)  # (B, S)
        context = torch.bmm(weights.unsqueeze(1), encoder_outputs).squeeze(1)  # (B, H)
        # END SOLUTION
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
        # BEGIN SOLUTION: embedding, dropout, attention, GRU fed [embedding; context], output layer
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_IDX)
        self.dropout = nn.Dropout(dropout)
        self.attention = BahdanauAttention(hidden_dim)
        self.gru = nn.GRU(embed_dim + hidden_dim, hidden_dim, num_layers, batch_first=True,
                          dropout=dropout if num_layers > 1 else 0.0)
        self.out = nn.Linear(2 * hidden_dim + embed_dim, vocab_size)
        # END SOLUTION

    def forward(self, x, hidden, encoder_outputs, mask=None):
        # BEGIN SOLUTION: attend, one GRU step, logits
        embedded = self.dropout(self.embedding(x))  # (B, 1, E)
        context, weights = self.attention(hidden[-1], encoder_outputs, mask)  # (B, H), (B, S)
        output, hidden = self.gru(torch.cat([embedded, context.unsqueeze(1)], dim=2), hidden)  # (B, 1, H)
        logits = self.out(torch.cat([output.squeeze(1), context, embedded.squeeze(1)], dim=1))  # (B, V)
        # END SOLUTION
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
        # BEGIN SOLUTION: encode, then decode from <SOS>, choosing each next input by teacher forcing
        encoder_outputs, hidden = self.encoder(src)
        mask = src == PAD_IDX  # (B, S), True = padding
        x = tgt[:, :1]  # <SOS>
        for t in range(1, T):
            logits, hidden, weights = self.decoder(x, hidden, encoder_outputs, mask)
            outputs[:, t] = logits
            attentions.append(weights)
            teacher_force = random.random() < teacher_forcing_ratio
            x = tgt[:, t:t + 1] if teacher_force else logits.argmax(dim=-1, keepdim=True)
        # END SOLUTION
        return outputs, attentions


class AdamOptimizer:
    """Adam, written by hand (no torch.optim), updating the parameters in place.

    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  m^ = m / (1 - b1^t);  v^ = v / (1 - b2^t)
    p = p - lr m^ / (sqrt(v^) + eps). Parameters whose .grad is None are left alone.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        self.params = list(params)  # model.parameters() is a generator: keep a list
        self.lr, self.betas, self.eps = lr, betas, eps
        # BEGIN SOLUTION: the step count and the two moment estimates, one per parameter
        self.t = 0
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        # END SOLUTION

    def zero_grad(self):
        """Forget the gradients of the last backward pass."""
        # BEGIN SOLUTION: set every gradient to None
        for p in self.params:
            p.grad = None
        # END SOLUTION

    @torch.no_grad()
    def step(self):
        """One Adam update of every parameter that has a gradient."""
        # BEGIN SOLUTION: update the moments, correct their bias, move the parameters
        self.t += 1
        beta1, beta2 = self.betas
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            if p.grad is None:
                continue
            m.mul_(beta1).add_(p.grad, alpha=1 - beta1)
            v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
            m_hat = m / (1 - beta1 ** self.t)
            v_hat = v / (1 - beta2 ** self.t)
            p.sub_(self.lr * m_hat / (v_hat.sqrt() + self.eps))
        # END SOLUTION


def clip_gradients(parameters, max_norm=1.0):
    """Scale all gradients together so that their total L2 norm is at most ``max_norm``, as
    torch.nn.utils.clip_grad_norm_ does (written by hand). ``parameters`` may be a generator;
    parameters without a gradient are skipped. Returns the total norm before clipping (float)."""
    # BEGIN SOLUTION: one norm over all gradients, one common scale factor
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    total_norm = torch.sqrt(sum((g.detach() ** 2).sum() for g in grads))
    scale = max_norm / (total_norm + 1e-6)
    if scale < 1:
        for g in grads:
            g.detach().mul_(scale)
    total_norm = total_norm.item()
    # END SOLUTION
    return total_norm


def compute_loss(outputs, targets, pad_idx=0):
    """Cross-entropy of logits ``outputs`` (B, T, V) against ``targets`` (B, T), averaged over
    the target positions that are not ``pad_idx``. Returns a scalar tensor (for backward).
    Callers pass outputs[:, 1:] and tgt[:, 1:], which are not contiguous: use reshape."""
    loss = F.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1))  # SOLUTION
    return loss


def train_epoch(model, loader, optimizer, device, teacher_forcing_ratio=0.5):
    """One pass over ``loader`` (batches (src (B, S), tgt (B, T)) padded with 0): forward with
    teacher forcing, compute_loss on outputs[:, 1:] and tgt[:, 1:], backward, clip_gradients
    at 1.0, optimizer step. Returns the mean of the batch losses (float)."""
    # BEGIN SOLUTION: the usual loop, one optimizer step per batch
    model.train()
    total = 0.0
    for src, tgt in loader:
        src, tgt = src.to(device), tgt.to(device)
        optimizer.zero_grad()
        outputs, _ = model(src, tgt, teacher_forcing_ratio)
        loss = compute_loss(outputs[:, 1:], tgt[:, 1:])
        loss.backward()
        clip_gradients(model.parameters(), 1.0)
        optimizer.step()
        total += loss.item()
    mean = total / len(loader)
    # END SOLUTION
    return mean


def evaluate(model, loader, device):
    """Mean loss over ``loader`` in eval mode, without gradients or teacher forcing (ratio 0)."""
    # BEGIN SOLUTION: eval mode, no gradients, the model's own predictions fed back
    model.eval()
    total = 0.0
    with torch.no_grad():
        for src, tgt in loader:
            src, tgt = src.to(device), tgt.to(device)
            outputs, _ = model(src, tgt, 0.0)
            total += compute_loss(outputs[:, 1:], tgt[:, 1:]).item()
    mean = total / len(loader)
    # END SOLUTION
    return mean


def predict_with_attention(model, src_tensor, vocab, max_len=20):
    """Greedy decoding of one unpadded source sentence ``src_tensor`` (S,) (ids ending with
    <EOS>): start from <SOS>, feed back the argmax each step, stop after producing <EOS> (or
    after ``max_len`` steps). Returns (ids, weights): ids a list of ints whose last element is
    <EOS> when it was produced, weights (len(ids), S) on the CPU, one row per step."""
    # BEGIN SOLUTION: encode once, then one decoder step per output word
    model.eval()
    device = next(model.parameters()).device
    src = src_tensor.to(device).unsqueeze(0)  # (1, S)
    sos, eos = vocab.word2idx["<SOS>"], vocab.word2idx["<EOS>"]
    ids, rows = [], []
    with torch.no_grad():
        encoder_outputs, hidden = model.encoder(src)
        mask = src == PAD_IDX
        x = torch.tensor([[sos]], device=device)
        for _ in range(max_len):
            logits, hidden, weights = model.decoder(x, hidden, encoder_outputs, mask)
            token = int(logits.argmax(dim=-1))
            ids.append(token)
            rows.append(weights[0].cpu())
            if token == eos:
                break
            x = torch.tensor([[token]], device=device)
    weights = torch.stack(rows) if rows else torch.zeros(0, src.shape[1])
    # END SOLUTION
    return ids, weights


def visualize_attention(src_tokens, pred_tokens, weights, save_path="attention_heatmap.png"):
    """Heatmap of ``weights`` (len(pred_tokens), len(src_tokens)): one column per source
    (encoder) token on the x axis, one row per predicted (decoder) token on the y axis, each
    tick labelled with its token; saved as a PNG at ``save_path``. Returns the Figure."""
    # BEGIN SOLUTION: imshow with a tick and a label per token, a colour bar, savefig
    weights = torch.as_tensor(weights).detach().cpu().float().numpy()
    fig, ax = plt.subplots(figsize=(1 + 0.6 * max(len(src_tokens), 6), 1 + 0.5 * max(len(pred_tokens), 5)))
    image = ax.imshow(weights, cmap="viridis", aspect="auto", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(src_tokens)))
    ax.set_xticklabels(src_tokens, rotation=45, ha="right")
    ax.set_yticks(range(len(pred_tokens)))
    ax.set_yticklabels(pred_tokens)
    ax.set_xlabel("source (encoder) tokens")
    ax.set_ylabel("predicted (decoder) tokens")
    fig.colorbar(image, ax=ax, label="attention weight")
    fig.tight_layout()
    fig.savefig(save_path)
    plt.close(fig)
    # END SOLUTION
    return fig


# BEGIN WRITTEN ANALYSIS
WRITTEN_ANALYSIS = """
1. The heatmap of a reversed sentence is an anti-diagonal: the first predicted word attends
   almost only to the last source word, the second to the one before it, and so on, and the
   final <EOS> looks at the source <EOS> (or spreads its weight). Attention has learned the
   alignment "output i <- input S - 1 - i" without being told it; each row is nearly one-hot
   because one source word is all the decoder needs to copy the next word.

2. With teacher forcing the decoder is fed the true previous word tgt[:, t-1] instead of its
   own guess. With ratio 1 every step is fed the truth: training is fast and stable, but the
   model never sees its own mistakes, so at test time (where it must feed back its argmax) one
   early error can derail the rest (exposure bias). With ratio 0 it always feeds back its own
   predictions, as at test time; early in training those are wrong, so later steps learn from
   garbage inputs and training is slower. A ratio in between (0.5) mixes the two.

3. Padding tokens are not words: in the attention, a weight on a padded position would pull
   the encoder output of <PAD> into the context, and the amount of padding depends on the
   other sentences in the batch, so the same sentence would be decoded differently in
   different batches. Setting their scores to -inf makes their weights exactly 0. In the loss,
   positions whose target is <PAD> would otherwise be counted as predictions to learn
   (rewarding the model for predicting <PAD>) and would dilute the mean differently for each
   batch; the mean must be taken over the real target tokens only.

4. Accuracy falls as sentences get longer: an exact match needs every word right, and each
   extra step is one more chance of an error (which the greedy decoder then feeds back). A
   seq2seq model without attention would have to squeeze the whole sentence into one vector
   and reverse it from memory, which gets much harder with length; with attention the decoder
   can look straight at the source word it needs at each step, so the task becomes a copy of
   one position per step and the accuracy degrades only slowly with length.
"""
# END WRITTEN ANALYSIS


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
    batches = []
    for start in range(0, len(sentences), 32):
        chunk = sentences[start:start + 32]
        src = pad([vocab.sentence_to_indices(s, add_eos=True) for s in chunk])
        tgt = pad([[SOS_IDX] + vocab.sentence_to_indices(s[::-1], add_eos=True) for s in chunk])
        batches.append((src, tgt))
    model = Seq2SeqWithAttention(Encoder(vocab.word_count, 32, 64), Decoder(vocab.word_count, 32, 64))
    optimizer = AdamOptimizer(model.parameters(), lr=3e-3)
    for epoch in range(8):
        loss = train_epoch(model, batches, optimizer, "cpu")
        print(f"epoch {epoch + 1}: train loss {loss:.3f}, eval loss {evaluate(model, batches[:8], 'cpu'):.3f}")
    sentence = ["big", "red", "dog", "eats"]
    ids, weights = predict_with_attention(model, torch.tensor(vocab.sentence_to_indices(sentence, add_eos=True)), vocab)
    print(sentence, "->", vocab.indices_to_sentence(ids))
    visualize_attention(sentence + ["<EOS>"], [vocab.idx2word[i] for i in ids], weights)
