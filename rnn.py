"""An RNN language model with scaled dot-product self-attention, trained on TinyStories.

The reference completion of the starter code of section 7 of the handout (10-301/10-601
HW7): the model (``RNNCell``, ``RNN``, ``SelfAttention``, ``RNNLanguageModel``), the data
(``SentenceDataset``), ``train()``, ``validate()``, ``complete()``, and a command line that
trains and writes the loss and metrics files, or samples from a saved checkpoint.

Train (the handout's tiny command):
    python3 rnn.py --train_data data/tiny_train_stories.json --val_data data/tiny_valid_stories.json \\
        --train_losses_out tiny_train_losses.txt --val_losses_out tiny_val_losses.txt \\
        --metrics_out tiny_metrics.txt --embed_dim 64 --hidden_dim 128 --dk 32 --dv 32 \\
        --num_sequences 128 --batch_size 1
Add --checkpoint model.pt to save the trained model, then sample from it:
    python3 rnn.py --checkpoint model.pt --prompt "Once upon a time there was a"

A checkpoint also holds the run's whole state, saved at every validation point: after a
disconnect or a kill, the same command with --resume continues from the last point and
ends with the files and weights an unbroken run writes.

A first run: python3 rnn.py (no flags) trains section 5's model on data/train_stories.json,
building the data first if it is missing (prepare_data.py's stages, from
../shared/tinystories or the hub). Run from another folder, rnn.py still uses the kit's
data/ and my_tokenizer/ (a relative path not found here is looked up in the kit's folder).
With no output flags, the outputs go to runs/NAME/ (NAME from the settings, as
experiments.py names its runs: e128_h128_k128_v128_b128_n50000_s10601), with model.pt;
a finished run there is not overwritten (--force trains it again), an unfinished one is
continued with --resume.

Only the building blocks the handout allows are used: no nn.RNN, nn.RNNCell,
nn.MultiheadAttention or F.scaled_dot_product_attention.
"""

import argparse
import difflib
import hashlib
import json
import math
import os
import pickle
import re
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader

SEED = 10601  # the starter's seed, set once before the model is built
MAX_GRAD_NORM = 1.0  # the starter's gradient clipping
EOS_ID = 1  # </s>, ends every story
REPO = Path(__file__).resolve().parent
DEFAULT_TOKENIZER = "my_tokenizer"
PREPARED = ("train_stories.json", "valid_stories.json")  # what prepare_data.py writes
DATA_DIR = REPO / "data"  # the prepared files, when --train_data and --val_data are left at their defaults
RUNS = Path("runs")  # run folders, in the current folder, for a command without output flags
TEXT_OUTPUTS = (("metrics_out", "metrics.txt"), ("train_losses_out", "train_losses.txt"),
                ("val_losses_out", "val_losses.txt"))
ACTIVATIONS = ("relu", "tanh")


class InputError(Exception):
    """Bad user input: reported as one line naming the file or flag, never a traceback."""


# ============================================================================= the model

def _activation(name):
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {name!r}")
    return torch.relu if name == "relu" else torch.tanh


class RNNCell(nn.Module):
    """One step of the recurrence (handout 7.6.1): h_t = phi(W_i2h i_t + W_h2h h_{t-1}).

    phi is ReLU (the starter's) or tanh. Both linear maps keep nn.Linear's default bias,
    as the starter's do. Shapes: input (B, E), hidden_state (B, H) -> h_t (B, H).
    """

    def __init__(self, input_dim, hidden_dim, *, activation="relu"):
        super().__init__()
        self.activation = activation
        self.phi = _activation(activation)
        self.i2h = nn.Linear(input_dim, hidden_dim)
        self.h2h = nn.Linear(hidden_dim, hidden_dim)

    def forward(self, input, hidden_state):
        return self.phi(self.i2h(input) + self.h2h(hidden_state))


class _Recurrence(torch.autograd.Function):
    """h_t = phi(z_t + W h_{t-1}) for all t, with z precomputed and h_0 = 0.

    Forward runs the loop without building an autograd graph (two kernels a step into a
    preallocated buffer); backward walks it once in reverse, one matrix product a step,
    and forms dL/dW with a single product over all steps. The same function as repeated
    ``RNNCell`` steps; the tests hold it to them and to gradcheck.
    Shapes: z (B, T, H), w (H, H) -> h (B, T, H).
    """

    @staticmethod
    def forward(ctx, z, w, relu):
        zt = z.detach().transpose(0, 1).contiguous()  # (T, B, H): each step's slice is contiguous
        hs = torch.empty_like(zt)
        wt = w.detach().t()
        h = zt.new_zeros(zt.shape[1:])
        for t in range(zt.shape[0]):
            torch.addmm(zt[t], h, wt, out=hs[t])
            h = hs[t].relu_() if relu else hs[t].tanh_()
        ctx.relu = relu
        ctx.save_for_backward(hs, w)
        return hs.transpose(0, 1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_h):
        hs, w = ctx.saved_tensors
        g = grad_h.transpose(0, 1).contiguous()
        # phi'(z_t) from h_t alone: [h > 0] for ReLU, 1 - h^2 for tanh.
        dphi = (hs > 0).to(hs.dtype) if ctx.relu else 1 - hs * hs
        dz = torch.empty_like(hs)
        T = hs.shape[0]
        torch.mul(g[T - 1], dphi[T - 1], out=dz[T - 1])
        buf = torch.empty_like(g[0])
        for t in range(T - 2, -1, -1):
            torch.addmm(g[t], dz[t + 1], w, out=buf)  # dL/dh_t: direct + through h_{t+1}
            torch.mul(buf, dphi[t], out=dz[t])
        grad_w = None
        if ctx.needs_input_grad[1]:
            H = hs.shape[-1]
            grad_w = dz[1:].reshape(-1, H).t() @ hs[:-1].reshape(-1, H)
        grad_z = dz.transpose(0, 1) if ctx.needs_input_grad[0] else None
        return grad_z, grad_w, None


class RNN(nn.Module):
    """The recurrent backbone (handout 7.6.3): h_t from ``cell``, y_t = W_out h_t (+ bias).

    ``step(input (B, E), hidden_prev)`` -> (h_t (B, H), y_t (B, H)), where ``hidden_prev``
    is None (h_0 = 0), the preceding hidden states (B, t-1, H), or the last one (B, H).
    ``forward(sequence (B, T, E))`` -> (hidden_states (B, T, H), output_states (B, T, H)).
    It projects every input at once and keeps only W_h2h h and phi in the sequential loop;
    it equals T calls of ``step``.
    """

    def __init__(self, input_dim, hidden_dim, *, activation="relu"):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.cell = RNNCell(input_dim, hidden_dim, activation=activation)
        self.out = nn.Linear(hidden_dim, hidden_dim)

    def step(self, input, hidden_prev=None):
        if hidden_prev is None or (hidden_prev.dim() == 3 and hidden_prev.shape[1] == 0):
            h_prev = input.new_zeros(input.shape[0], self.hidden_dim)
        elif hidden_prev.dim() == 3:
            h_prev = hidden_prev[:, -1]
        else:
            h_prev = hidden_prev
        h_t = self.cell(input, h_prev)
        return h_t, self.out(h_t)

    def forward(self, sequence):
        i2h, h2h = self.cell.i2h, self.cell.h2h
        # h2h's bias is added at every step, h_0 = 0 included, so it joins i2h's outside the loop.
        z = F.linear(sequence, i2h.weight, i2h.bias + h2h.bias)
        hidden_states = _Recurrence.apply(z, h2h.weight, self.cell.activation == "relu")
        return hidden_states, self.out(hidden_states)


class KVCache:
    """Keys (B, t, D_key) and values (B, t, D_value) of the positions generated so far.

    Preallocated to ``capacity`` positions so appending one position copies one position.
    """

    def __init__(self, keys, values, capacity):
        B, t, dk = keys.shape
        capacity = max(capacity, t)
        self.k = keys.new_empty(B, capacity, dk)
        self.v = values.new_empty(B, capacity, values.shape[-1])
        self.k[:, :t], self.v[:, :t] = keys, values
        self.length = t

    def append(self, k, v):
        n = k.shape[1]
        if self.length + n > self.k.shape[1]:  # grow by doubling: amortised O(1) a position
            grow = max(self.k.shape[1], n)
            self.k = torch.cat([self.k, self.k.new_empty(self.k.shape[0], grow, self.k.shape[2])], 1)
            self.v = torch.cat([self.v, self.v.new_empty(self.v.shape[0], grow, self.v.shape[2])], 1)
        self.k[:, self.length:self.length + n] = k
        self.v[:, self.length:self.length + n] = v
        self.length += n
        return self.k[:, :self.length], self.v[:, :self.length]


class SelfAttention(nn.Module):
    """Causal scaled dot-product self-attention over the RNN outputs (handout 7.6.2).

    q_t = W_q y_t, k_n = W_k y_n, v_n = W_v y_n (each + bias); s_n = k_n . q_t / sqrt(D_key)
    for n <= t; w = softmax(s); a_t = W_o (sum_n w_n v_n) + bias.
    ``step(y_all (B, t, H))`` -> a_t (B, H), the attention of the last position. Given a
    ``KVCache`` holding the keys and values of the earlier positions, ``y_all`` may be just
    the new position (B, 1, H): only it is projected.
    ``forward(y_all (B, T, H))`` -> (B, T, H), every position at once as
    softmax(M(Q K^T / sqrt(D_key))) V, M the causal mask; it equals T calls of ``step``.
    """

    def __init__(self, hidden_dim, key_dim, value_dim):
        super().__init__()
        self.key_dim = key_dim
        self.query_transform = nn.Linear(hidden_dim, key_dim)
        self.key_transform = nn.Linear(hidden_dim, key_dim)
        self.value_transform = nn.Linear(hidden_dim, value_dim)
        self.output_transform = nn.Linear(value_dim, hidden_dim)

    def new_cache(self, y_all, capacity=0):
        """A ``KVCache`` holding the keys and values of every position of y_all (B, t, H)."""
        return KVCache(self.key_transform(y_all), self.value_transform(y_all), capacity)

    def step(self, y_all, cache=None):
        q = self.query_transform(y_all[:, -1])  # (B, Dk)
        if cache is None:
            k, v = self.key_transform(y_all), self.value_transform(y_all)
        else:
            k, v = cache.append(self.key_transform(y_all[:, -1:]), self.value_transform(y_all[:, -1:]))
        # q (B, 1, Dk) @ k^T rather than k @ q: the same numbers, several times faster on CPU.
        s = torch.bmm(q.unsqueeze(1), k.transpose(1, 2)).squeeze(1) / math.sqrt(self.key_dim)  # (B, t)
        w = torch.softmax(s, dim=-1)
        return self.output_transform(torch.bmm(w.unsqueeze(1), v).squeeze(1))

    def forward(self, y_all):
        T = y_all.shape[1]
        # Scaling q rather than the (T, T) scores: the same product, T/D_key times fewer ops.
        q = self.query_transform(y_all) * (1.0 / math.sqrt(self.key_dim))
        k, v = self.key_transform(y_all), self.value_transform(y_all)
        s = torch.bmm(q, k.transpose(1, 2))  # (B, T, T): s[b, t, n] = k_n . q_t / sqrt(Dk)
        future = torch.ones(T, T, dtype=torch.bool, device=y_all.device).triu_(1)
        w = torch.softmax(s.masked_fill_(future, float("-inf")), dim=-1)
        return self.output_transform(torch.bmm(w, v))


class RNNLanguageModel(nn.Module):
    """Embeddings -> RNN -> self-attention -> LM head (handout 7.6.4).

    i_t = E[x_t]; (h_t, y_t) from ``rnn``; a_t from ``attention``; g_t = W_LM a_t (+ bias),
    P(x_{t+1} | x_1..x_t) = softmax(g_t). ``key_dim`` and ``value_dim`` default to
    ``hidden_dim``. The modules are created in the starter's order (embeddings, rnn,
    attention, lm_head), so under the same seed a student's model starts from our weights.
    ``forward(tokens (B, T))`` -> (token_logits (B, T, V), hidden_states (B, T, H),
    attn_inputs (B, T, H)), attn_inputs being the RNN's outputs y_t.
    """

    def __init__(self, embed_dim, hidden_dim, vocab_size, key_dim=None, value_dim=None, *, activation="relu"):
        super().__init__()
        key_dim = hidden_dim if key_dim is None else key_dim
        value_dim = hidden_dim if value_dim is None else value_dim
        for name, value in (("embed_dim", embed_dim), ("hidden_dim", hidden_dim), ("vocab_size", vocab_size),
                            ("key_dim", key_dim), ("value_dim", value_dim)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.config = dict(embed_dim=embed_dim, hidden_dim=hidden_dim, vocab_size=vocab_size,
                           key_dim=key_dim, value_dim=value_dim, activation=activation)
        self.embeddings = nn.Embedding(vocab_size, embed_dim)
        self.rnn = RNN(embed_dim, hidden_dim, activation=activation)
        self.attention = SelfAttention(hidden_dim, key_dim, value_dim)
        self.lm_head = nn.Linear(hidden_dim, vocab_size)

    def forward(self, tokens):
        hidden_states, attn_inputs = self.rnn(self.embeddings(tokens))
        return self.lm_head(self.attention(attn_inputs)), hidden_states, attn_inputs

    def shifted_logits(self, tokens):
        """``forward``'s logits at positions 1..T-1 only, the ones with a next token (B, T-1, V).

        The LM head is most of a training step; slicing its input rather than its output
        saves the last position's logits and a copy of all the others, forward and backward.
        """
        _, attn_inputs = self.rnn(self.embeddings(tokens))
        return self.lm_head(self.attention(attn_inputs)[:, :-1])

    def select_token(self, token_logits, temperature):
        """argmax at temperature 0, else one draw of softmax(logits / temperature).

        token_logits (V,) -> a 0-d tensor, or (B, V) -> (B,). The draw is the starter's
        ``torch.multinomial(probs, 1)``, so under the same seed it picks the same token.
        """
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if temperature == 0:
            return torch.argmax(token_logits, dim=-1)
        probs = torch.softmax(token_logits / temperature, dim=-1)
        return torch.multinomial(probs, 1)[..., 0]

    @torch.no_grad()
    def generate(self, tokens, max_tokens=10, temperature=0.0, *, use_cache=True):
        """Continue ``tokens`` (1, t) by exactly ``max_tokens`` tokens -> (max_tokens,).

        ``forward`` reads the prefix and its last logits give the first new token; each
        further token goes through ``rnn.step`` and ``attention.step``, as in the starter.
        It does not stop at </s>. With ``use_cache`` (the default) the keys and values of
        earlier positions are kept, not recomputed: the same tokens, the same random draws.
        Several rows (B, t) give (B, max_tokens).
        """
        if max_tokens <= 0:
            raise ValueError(f"max_tokens must be positive, got {max_tokens}")
        token_logits, hidden_states, attn_inputs = self.forward(tokens)
        single = tokens.shape[0] == 1
        # A single row samples from the (V,) vector, exactly as the starter does.
        select = (lambda logits: self.select_token(logits[0], temperature).view(1)) if single else \
            (lambda logits: self.select_token(logits, temperature))
        token = select(token_logits[:, -1])
        new_tokens = [token]
        cache = self.attention.new_cache(attn_inputs, tokens.shape[1] + max_tokens) if use_cache else None
        h = hidden_states[:, -1]
        for _ in range(max_tokens - 1):
            h, y = self.rnn.step(self.embeddings(token), h if use_cache else hidden_states)
            if use_cache:
                a = self.attention.step(y.unsqueeze(1), cache)
            else:
                hidden_states = torch.cat([hidden_states, h.unsqueeze(1)], dim=1)
                attn_inputs = torch.cat([attn_inputs, y.unsqueeze(1)], dim=1)
                a = self.attention.step(attn_inputs)
            token = select(self.lm_head(a))
            new_tokens.append(token)
        out = torch.stack(new_tokens, dim=1)
        return out[0] if single else out


HybridLanguageModel = RNNLanguageModel  # the name a later edition of the handout uses


def complete(lm, tokenizer, prefix, num_tokens=64, temperature=0.0):
    """The starter's ``complete``: the decoded ``num_tokens`` tokens that follow ``prefix``.

    The prompt is encoded without the </s> the tokenizer appends (it would tell the model
    the story had ended). Generation does not stop at </s>, so the text may hold one.
    """
    if isinstance(lm, dict):  # the handout's torch.load("model.pt"): the kit saves a dict, not a model
        lm = model_from_checkpoint(lm, "complete()").eval()
        print("rnn.complete: given the checkpoint dict that torch.load returns, so it built the model from it; "
              "load it once with: lm, checkpoint = rnn.load_checkpoint(\"model.pt\")", file=sys.stderr)
    device = next(lm.parameters()).device
    ids = tokenizer.encode(prefix, add_special_tokens=False)
    new_tokens = lm.generate(torch.tensor([ids], device=device), max_tokens=num_tokens, temperature=temperature)
    return tokenizer.decode(new_tokens.tolist())


# ============================================================================= data

class SentenceDataset:
    """The prepared token-id sequences of a JSON file: ``dataset[i]`` is a (T_i,) long tensor.

    Checked as it is read: a JSON list of lists of integer ids, each at least 2 long, each
    id below ``vocab_size`` when given. Problems raise an InputError naming ``flag`` and
    the file.
    """

    # (sha256 of the file, vocabulary) -> its checked sequences: a sweep of many runs in one
    # process (experiments.py) parses each file once, and a changed file is parsed again.
    _parsed = {}

    def __init__(self, path, *, vocab_size=None, flag=""):
        self.path = Path(path)
        self.where = f"{flag} {path}".strip()
        self.sequences = self._read(vocab_size)

    def __len__(self):
        return len(self.sequences)

    def __getitem__(self, idx):
        return self.sequences[idx]

    def lengths(self):
        return {len(s) for s in self.sequences}

    def _read(self, vocab_size):
        where = self.where
        try:
            raw = self.path.read_bytes()
            text = raw.decode("utf-8")
        except FileNotFoundError:
            hint = ("; build it with: python3 prepare_data.py" if self.path.name in PREPARED else "")
            raise InputError(f"{where}: no such file{hint}")
        except IsADirectoryError:
            raise InputError(f"{where}: is a directory, not a JSON file")
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"{where}: cannot read it ({getattr(e, 'strerror', None) or e})")
        key = (hashlib.sha256(raw).digest(), vocab_size)
        if key in self._parsed:
            return self._parsed[key]
        try:
            data = json.loads(text)
        except ValueError as e:
            raise InputError(f"{where}: not valid JSON ({e})")
        if not isinstance(data, list) or not all(isinstance(s, list) for s in data):
            raise InputError(f"{where}: expected a JSON list of sequences of token ids")
        if not data:
            raise InputError(f"{where}: the dataset is empty")
        sequences = []
        for i, seq in enumerate(data):
            if not all(type(x) is int for x in seq):
                raise InputError(f"{where}: sequence {i} is not a list of integer token ids")
            if len(seq) < 2:
                raise InputError(f"{where}: sequence {i} has {len(seq)} token(s); at least 2 are needed "
                                 "to predict a next token")
            lo, hi = min(seq), max(seq)
            if lo < 0 or (vocab_size is not None and hi >= vocab_size) or hi >= 2**63:
                bad = lo if lo < 0 else hi
                raise InputError(f"{where}: sequence {i} has id {bad}, outside the tokenizer's "
                                 f"vocabulary of {vocab_size}")
            sequences.append(torch.tensor(seq, dtype=torch.long))
        if len(self._parsed) >= 4:  # a training and a validation file, and the next ones
            self._parsed.clear()
        self._parsed[key] = sequences
        return sequences


class _Repeated(torch.utils.data.Dataset):
    """The first ``length`` items of ``dataset`` walked again and again in the same order."""

    def __init__(self, dataset, length):
        self.dataset, self.length = dataset, length

    def __len__(self):
        return self.length

    def __getitem__(self, idx):
        return self.dataset[idx % len(self.dataset)]


def check_stackable(dataset, batch_size, flag):
    """Batches are stacked as they are (no padding): a ragged file works at batch size 1 only."""
    lengths = dataset.lengths()
    if batch_size > 1 and len(lengths) > 1:
        raise InputError(f"{flag} {dataset.path}: sequences of {len(lengths)} different lengths "
                         f"({min(lengths)} to {max(lengths)} tokens) cannot be stacked into batches of "
                         f"--batch_size {batch_size}; rebuild it with python3 prepare_data.py "
                         "(fixed-length windows) or use --batch_size 1")


# ============================================================================= training

def next_token_loss(lm, sequence, loss_fn):
    """``loss_fn`` of the logits at positions 1..T-1 against the tokens at 2..T (B, T) -> scalar.

    The last position has no next token, so it has no target. Any model with the starter's
    ``forward`` works; ours computes only the logits that have a target.
    """
    if isinstance(lm, RNNLanguageModel):
        logits = lm.shifted_logits(sequence)
    else:
        logits = lm(sequence)[0][:, :-1]
    return loss_fn(logits.reshape(-1, logits.shape[-1]), sequence[:, 1:].reshape(-1))


def validate(lm, dataset, loss_fn, num_batches=1):
    """The starter's validate: the mean ``loss_fn`` of the first ``num_batches`` batches of ``dataset``.

    The starter reads the first batch only (``num_batches = 1``), so its "validation loss"
    is the loss of one batch: one sequence in the tiny command, 128 at section 5's batch size.
    ``num_batches`` is the kit's: N > 1 averages the first N batches' losses, 0 every batch's
    (the whole set). Eval mode, no gradient; the model is left in eval mode, as the starter's.
    """
    if not isinstance(num_batches, int) or num_batches < 0:
        raise ValueError(f"num_batches must be a non-negative integer, got {num_batches!r}")
    device = next(lm.parameters()).device
    lm.eval()
    total, batches = 0.0, 0
    with torch.no_grad():
        for sequence in dataset:
            total += next_token_loss(lm, sequence.to(device), loss_fn).item()
            batches += 1
            if batches == num_batches:  # never true for 0, which reads every batch
                break
    if batches == 0:
        raise InputError("the validation data holds no batch")
    return total / batches


def validation_tag(num_batches):
    """Which batches ``validate(..., num_batches)`` reads, in words, for the logs."""
    return {0: "whole validation set", 1: "first batch"}.get(num_batches, f"first {num_batches} batches")


def train(lm, train_data, valid_data, loss_fn, optimizer, num_sequences, batch_size, *,
          max_grad_norm=MAX_GRAD_NORM, val_batches=1, log=None, progress=None, on_point=None, resume=None):
    """Train on the first ``num_sequences // batch_size`` batches of ``train_data``, in order.

    Every ``val_index = max(1, int(num_sequences * 0.1) // batch_size)`` batches (batch 0
    included) it records a training point -- that batch's loss at batch 0, later the sum of
    the batch losses since the last point divided by ``val_index`` -- and
    ``validate(lm, valid_data, loss_fn, val_batches)`` (the starter's: the first validation
    batch), each rounded to 6 decimals. Gradients are clipped to norm ``max_grad_norm`` (the
    starter's 1.0; 0 turns it off). Returns (train_losses, valid_losses).

    ``on_point(state)``, when given, is called after each point with the loop's state, plain
    values only (``loop_state``): the next batch, the running loss sum, the points so far and
    the torch RNG states. ``resume=state`` continues from such a state, the model and the
    optimizer being restored by the caller: ``train_data`` then yields the batches from
    ``state["next_batch"]`` on (``train_loader(..., first_batch=)`` makes such a loader). The
    RNG states are restored after the loader's iterator is made, since making it draws from
    the torch RNG and an uninterrupted run made its own before the point.
    """
    device = next(lm.parameters()).device
    num_batches = num_sequences // batch_size
    if num_batches < 1:
        raise InputError(f"--num_sequences {num_sequences} is less than --batch_size {batch_size}: "
                         "not one batch to train on")
    val_index = max(1, int(num_sequences * 0.1) // batch_size)
    lm.train()
    train_losses, valid_losses = [], []
    running, first = 0.0, 0
    if resume is not None:
        first, running = resume["next_batch"], resume["running"]
        train_losses, valid_losses = list(resume["train_losses"]), list(resume["valid_losses"])
    start = time.perf_counter()
    batches = iter(train_data)  # a DataLoader's iterator draws its base seed from the torch RNG
    if resume is not None:
        set_rng_states(resume["rng"])
    for idx, sequence in enumerate(batches, start=first):
        if idx >= num_batches:
            break
        sequence = sequence.to(device, non_blocking=True)
        optimizer.zero_grad()
        loss = next_token_loss(lm, sequence, loss_fn)
        loss.backward()
        if max_grad_norm > 0:
            nn.utils.clip_grad_norm_(lm.parameters(), max_grad_norm)
        optimizer.step()
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"the training loss became {loss_value} at batch {idx} "
                                     f"(sequences {idx * batch_size + 1:,}-{(idx + 1) * batch_size:,}); "
                                     "try a lower --lr")
        running += loss_value
        if progress is not None:
            progress.update(sequence.shape[0])
        if idx % val_index == 0:
            train_losses.append(round(running / val_index, 6) if idx != 0 else round(running, 6))
            valid_losses.append(round(validate(lm, valid_data, loss_fn, val_batches), 6))
            if not math.isfinite(valid_losses[-1]):
                raise FloatingPointError(f"the validation loss became {valid_losses[-1]} after batch {idx}")
            running = 0.0
            lm.train()
            if log is not None:
                log(f"batch {idx:,}/{num_batches:,} ({(idx + 1) * batch_size:,} sequences): "
                    f"train loss {train_losses[-1]:.4f}, valid loss {valid_losses[-1]:.4f} "
                    f"({validation_tag(val_batches)}), {time.perf_counter() - start:.1f} s")
            if on_point is not None:
                on_point(loop_state(idx + 1, running, train_losses, valid_losses))
    return train_losses, valid_losses


def loop_state(next_batch, running, train_losses, valid_losses):
    """What ``train`` needs to continue after a point: plain values, so it loads with weights_only."""
    return {"next_batch": next_batch, "running": running, "train_losses": list(train_losses),
            "valid_losses": list(valid_losses), "rng": rng_states()}


def rng_states():
    """The torch RNG states: the CPU generator's, and each GPU's when CUDA is in use (uint8 tensors)."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    return {"cpu": torch.get_rng_state(), "cuda": list(cuda)}


def set_rng_states(states):
    torch.set_rng_state(states["cpu"])
    if states["cuda"] and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


def point_sequences(num_sequences, batch_size, num_points):
    """Sequences seen at each point ``train`` records: batch idx's point follows (idx + 1) batches."""
    val_index = max(1, int(num_sequences * 0.1) // batch_size)
    return [(i * val_index + 1) * batch_size for i in range(num_points)]


# ============================================================================= files

def atomic_write_all(writes):
    """Write every (path, write) pair: ``write(tmp)`` fills a temporary file beside ``path``;
    only when all have succeeded are they renamed into place, so a failure leaves no output."""
    temps = []
    try:
        for path, write in writes:
            path = Path(path)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            os.close(fd)
            temps.append((tmp, path))
            write(tmp)
            os.chmod(tmp, 0o644)
        for tmp, path in temps:
            os.replace(tmp, path)
    finally:
        for tmp, _ in temps:
            if os.path.exists(tmp):
                os.unlink(tmp)


def atomic_write(path, write):
    """Call ``write(tmp_path)``, then rename the temporary file to ``path``: never half-written."""
    atomic_write_all([(path, write)])


def text_writer(text):
    """A ``write`` for ``atomic_write``/``atomic_write_all`` that writes ``text`` as utf-8."""
    return lambda tmp: Path(tmp).write_text(text, encoding="utf-8")


def atomic_write_text(path, text):
    """Write ``text`` as utf-8 to ``path``, atomically."""
    atomic_write(path, text_writer(text))


def check_writable(path, flag):
    """Fail before training, not after it, when an output path cannot be written."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise InputError(f"{flag} {path}: is a directory")
    if not parent.is_dir():
        raise InputError(f"{flag} {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise InputError(f"{flag} {path}: not writable")


def checkpoint_dict(lm, tokenizer_path=DEFAULT_TOKENIZER, args=None):
    """A plain dict (config, state_dict, tokenizer path, training arguments): loads with weights_only.

    ``torch.save(rnn.checkpoint_dict(lm), "model.pt")`` saves a model of your own the kit's way.
    """
    return {"config": dict(lm.config),
            "state_dict": {k: v.detach().cpu() for k, v in lm.state_dict().items()},
            "tokenizer": str(tokenizer_path),
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in (args or {}).items()}}


def _sizes_of_state_dict(state):
    """The constructor arguments (E, H, V, dk, dv) a bare state_dict of the starter's model implies, or None."""
    try:
        V, E = state["embeddings.weight"].shape
        H = state["rnn.cell.h2h.weight"].shape[0]
        dk = state["attention.query_transform.weight"].shape[0]
        dv = state["attention.value_transform.weight"].shape[0]
    except (KeyError, AttributeError, ValueError, IndexError):
        return None
    return int(E), int(H), int(V), int(dk), int(dv)


def read_checkpoint(path):
    """``torch.load(path, weights_only=True)`` of a kit checkpoint, or an InputError saying what the file is."""
    where = f"--checkpoint {path}"
    if not Path(path).is_file():
        raise InputError(f"{where}: no such file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:  # weights_only refuses a pickled object; also a non-torch pickle
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        if found is None:
            raise InputError(f"{where}: not a file torch.load can read (not a PyTorch checkpoint)")
        raise InputError(f"{where}: a pickled {found.group(1)} object (torch.save of a whole model?), which the "
                         "kit does not unpickle since that runs code; save the kit's plain dict instead: "
                         "torch.save(rnn.checkpoint_dict(lm), path), or train with rnn.py --checkpoint PATH")
    except Exception:  # not a zip or pickle at all (RuntimeError, EOFError, ...)
        raise InputError(f"{where}: not a file torch.load can read (not a PyTorch checkpoint)")
    if not isinstance(checkpoint, dict):
        raise InputError(f"{where}: holds a {type(checkpoint).__name__}, not the kit's checkpoint dict "
                         "(config, state_dict, ...) that rnn.py --checkpoint PATH writes")
    if "config" not in checkpoint and checkpoint and all(torch.is_tensor(v) for v in checkpoint.values()):
        sizes = _sizes_of_state_dict(checkpoint)
        call = f"rnn.RNNLanguageModel{sizes}" if sizes else "rnn.RNNLanguageModel(E, H, V, dk, dv)"
        raise InputError(f"{where}: a bare state_dict ({len(checkpoint)} tensors, no config); build the model and "
                         f"load it: lm = {call}; lm.load_state_dict(torch.load(path, weights_only=True))")
    missing = [key for key in ("config", "state_dict") if key not in checkpoint]
    if missing:
        raise InputError(f"{where}: a dict without {' or '.join(missing)}, not a checkpoint of rnn.py")
    return checkpoint


def model_from_checkpoint(checkpoint, where="checkpoint"):
    """Rebuild ``RNNLanguageModel`` from a checkpoint dict; an InputError naming what does not fit."""
    try:
        config = dict(checkpoint["config"])
        lm = RNNLanguageModel(config.pop("embed_dim"), config.pop("hidden_dim"), config.pop("vocab_size"),
                              config.pop("key_dim"), config.pop("value_dim"), **config)
        state = dict(checkpoint["state_dict"])
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"{where}: its config is not rnn.py's ({type(e).__name__}: {e})")
    expected = lm.state_dict()
    for name, tensor in expected.items():
        if name not in state:
            raise InputError(f"{where}: weights do not fit its config: {name} is missing")
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise InputError(f"{where}: weights do not fit its config: {name} is {tuple(state[name].shape)} "
                             f"in the file but {tuple(tensor.shape)} by its config")
    extra = [name for name in state if name not in expected]
    if extra:
        raise InputError(f"{where}: weights do not fit its config: {extra[0]} is not a parameter of the model")
    lm.load_state_dict(state)
    return lm


def load_checkpoint(path, device="cpu"):
    """Rebuild the model from a checkpoint: ``lm, checkpoint = load_checkpoint("model.pt")``."""
    checkpoint = read_checkpoint(path)
    lm = model_from_checkpoint(checkpoint, f"--checkpoint {path}")
    return lm.to(device).eval(), checkpoint


def load_tokenizer(path, flag="--tokenizer"):
    """The kit's tokenizer via transformers; an InputError when it is missing or not loadable."""
    path = kit_path(path)  # "my_tokenizer" works from any working directory
    if not (path / "tokenizer.json").is_file():
        raise InputError(f"{flag} {path}: no tokenizer.json there (the kit's tokenizer is my_tokenizer/)")
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    except Exception as e:
        raise InputError(f"{flag} {path}: cannot load it ({str(e).splitlines()[0][:120]})")
    if tokenizer.convert_tokens_to_ids("</s>") != EOS_ID:
        raise InputError(f"{flag} {path}: </s> is not id {EOS_ID}, as the kit's data needs")
    return tokenizer


# ============================================================================= command line

def positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}")
        if not value > 0 or (kind is float and not math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value
    parse.__name__ = f"positive {kind.__name__}"
    return parse


def non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
    if not value >= 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def seed_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"must be between 0 and 2**63 - 1, got {text}")
    return value


class OneLineParser(argparse.ArgumentParser):
    """argparse with one-line errors, no abbreviated flags, and a suggestion for a mistyped one.

    An abbreviation silently accepted (``--num_sequence`` for ``--num_sequences``) is how a
    typo overwrites a run; here it is an error that names the flag meant.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(**kwargs)

    def error(self, message):
        if message.startswith("unrecognized arguments:"):
            known = [s for a in self._actions for s in a.option_strings]
            for word in message.split(":", 1)[1].split():
                close = difflib.get_close_matches(word.split("=")[0], known, n=1, cutoff=0.6)
                if word.startswith("-") and close:
                    message = f"unrecognized argument {word}: did you mean {close[0]}?"
                    break
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")

    def given(self, argv):
        """The ``dest`` of each option written out in ``argv``."""
        dests = []
        for word in argv:
            action = self._option_string_actions.get(word.split("=", 1)[0]) if word.startswith("--") else None
            if action is not None:
                dests.append((word.split("=", 1)[0], action.dest))
        return dests


TRAINING_ONLY = ("train_data", "val_data", "metrics_out", "train_losses_out", "val_losses_out", "embed_dim",
                 "hidden_dim", "dk", "dv", "num_sequences", "batch_size", "activation", "lr", "grad_clip",
                 "val_batches", "resume", "force")
SAMPLING_ONLY = ("temperature", "num_tokens", "num_samples")


def build_parser():
    p = OneLineParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("training (the handout's flags; defaults are section 5's)")
    g.add_argument("--train_data", type=str, default=None,
                   help="training sequences, JSON (default: the kit's data/train_stories.json, built by "
                        "prepare_data.py's stages on the first run that needs it)")
    g.add_argument("--val_data", type=str, default=None,
                   help="validation sequences, JSON (default: the kit's data/valid_stories.json, built likewise)")
    g.add_argument("--metrics_out", type=str, default=None,
                   help="final train and validation loss (default: metrics.txt; in the run folder when no "
                        "output flag is given)")
    g.add_argument("--train_losses_out", type=str, default=None,
                   help="training loss, one point a line (default: train_losses.txt, or in the run folder)")
    g.add_argument("--val_losses_out", type=str, default=None,
                   help="validation loss, one point a line (default: val_losses.txt, or in the run folder)")
    g.add_argument("--embed_dim", type=positive(int), default=128, help="embedding size E (default: %(default)s)")
    g.add_argument("--hidden_dim", type=positive(int), default=128, help="hidden size H (default: %(default)s)")
    g.add_argument("--dk", type=positive(int), default=128, help="key size D_key (default: %(default)s)")
    g.add_argument("--dv", type=positive(int), default=128, help="value size D_value (default: %(default)s)")
    g.add_argument("--num_sequences", type=positive(int), default=50000,
                   help="sequences to train on; more than the file holds walks it again (default: %(default)s)")
    g.add_argument("--batch_size", type=positive(int), default=128, help="sequences per batch (default: %(default)s)")
    g = p.add_argument_group("training (the kit's flags)")
    g.add_argument("--activation", type=str, choices=ACTIVATIONS, default="relu", help="phi of the RNN cell (default: %(default)s)")
    g.add_argument("--lr", type=positive(float), default=1e-3, help="Adam learning rate (default: %(default)s)")
    g.add_argument("--grad_clip", type=non_negative_float, default=MAX_GRAD_NORM,
                   help="clip the gradient norm to this; 0 turns it off (default: %(default)s)")
    g.add_argument("--val_batches", type=non_negative_int, default=1,
                   help="validation batches read at each point: 1 is the starter's validate(), which reads "
                        "only the first batch; N the first N; 0 all of them, the whole set (default: %(default)s)")
    g = p.add_argument_group("training and sampling")
    g.add_argument("--checkpoint", "--model_path", dest="checkpoint", type=str, default=None,
                   help="training writes the model here (a plain dict), and its whole state at every "
                        "validation point, for --resume (default: the run folder's model.pt when no output "
                        "flag is given, else none is written); sampling reads it")
    g.add_argument("--seed", type=seed_int, default=SEED, help="seed of the weights, and of sampling (default: %(default)s)")
    g.add_argument("--device", type=str, default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N (default: %(default)s)")
    g.add_argument("--tokenizer", type=str, default=None,
                   help=f"tokenizer folder; sets the vocabulary (default: {DEFAULT_TOKENIZER} for training, "
                        "the checkpoint's for sampling)")
    g = p.add_argument_group("resuming and run folders")
    g.add_argument("--resume", action="store_true", default=False,
                   help="continue the run saved in --checkpoint (or in the run folder) from its last validation "
                        "point, to the same numbers as an unbroken run; the command must repeat the saved one's "
                        "sizes, data and seed. With no save there yet it starts afresh and says so; a finished "
                        "run is not trained again, its loss and metrics files are written again from it")
    g.add_argument("--force", action="store_true", default=False,
                   help="train again in a run folder that holds a finished or unfinished run of these settings "
                        "(without output flags, rnn.py refuses to overwrite it)")
    g = p.add_argument_group("sampling (given --prompt: reads --checkpoint and prints completions)")
    g.add_argument("--prompt", type=str, default=None, help="text to continue (default: none, so train)")
    g.add_argument("--temperature", type=non_negative_float, nargs="+", default=[0.0, 0.3, 0.8],
                   help="one or more temperatures; 0 is greedy (default: 0 0.3 0.8)")
    g.add_argument("--num_tokens", type=positive(int), default=64, help="tokens per completion (default: %(default)s)")
    g.add_argument("--num_samples", type=positive(int), default=1, help="completions per temperature (default: %(default)s)")
    return p


def parse_args(argv=None):
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    given = parser.given(argv)
    sampling = args.prompt is not None
    idle = [flag for flag, dest in given if dest in (TRAINING_ONLY if sampling else SAMPLING_ONLY)]
    if idle:
        parser.error(f"{', '.join(idle)} {'has' if len(idle) == 1 else 'have'} no effect when "
                     f"{'sampling (--prompt given)' if sampling else 'training (they need --prompt)'}")
    if sampling and args.checkpoint is None:
        parser.error("--prompt needs --checkpoint PATH, the model to sample from")
    named = [f"--{dest}" for dest, _ in TEXT_OUTPUTS if getattr(args, dest) is not None]
    if args.resume and args.force:
        parser.error("--resume continues the saved run and --force starts it over: give one")
    if args.force and named:
        parser.error(f"--force has no effect with {named[0]} (named outputs are overwritten, as always); "
                     "it is for run folders")
    if args.resume and named and args.checkpoint is None:
        parser.error("--resume needs --checkpoint PATH, the save to continue (without output flags, the run "
                     "folder's model.pt)")
    return args


def resolve_device(name):
    """auto, cpu, cuda or cuda:N -> torch.device; an InputError for anything else or a missing GPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise InputError(f"--device {name}: not a device this kit runs on (use auto, cpu, cuda or cuda:N)")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {name}: CUDA is not available on this machine")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise InputError(f"--device {name}: this machine has {torch.cuda.device_count()} GPU(s)")
    return device


def sample_main(args):
    if not args.prompt.strip():
        raise InputError("--prompt: the prompt is empty")
    lm, checkpoint = load_checkpoint(args.checkpoint, resolve_device(args.device))
    tokenizer = load_tokenizer(args.tokenizer or checkpoint.get("tokenizer", DEFAULT_TOKENIZER))
    if lm.config["vocab_size"] != len(tokenizer):
        raise InputError(f"--checkpoint {args.checkpoint}: made with a vocabulary of {lm.config['vocab_size']}, "
                         f"but the tokenizer has {len(tokenizer)}")
    torch.manual_seed(args.seed)
    for temperature in args.temperature:
        for i in range(args.num_samples):
            text = complete(lm, tokenizer, args.prompt, args.num_tokens, temperature)
            # The model goes on into a new story after </s>; the story asked for ends there.
            print(f"--- temperature {temperature:g}, sample {i + 1}:\n{args.prompt} {text.split('</s>')[0].strip()}")


def train_loader(dataset, num_sequences, batch_size, log, first_batch=0):
    """The starter's DataLoader; past the end of the file it walks it again in the same order.

    With ``first_batch`` it starts at that batch, without reading the ones before: the loader
    does not shuffle, so batch i is always the same slice of the file.
    """
    if num_sequences > len(dataset):
        log(f"--num_sequences {num_sequences:,} is more than the {len(dataset):,} sequences of "
            f"{dataset.path}: walking it {num_sequences / len(dataset):.2f} times, in the same order")
        dataset = _Repeated(dataset, num_sequences)
    if first_batch:
        dataset = torch.utils.data.Subset(dataset, range(min(first_batch * batch_size, len(dataset)), len(dataset)))
    return DataLoader(dataset, batch_size=batch_size, shuffle=False)


def training_inputs(tokenizer_path, train_data, val_data, batch_size):
    """(tokenizer, training set, validation set), each checked, and each file stackable at ``batch_size``."""
    tokenizer = load_tokenizer(tokenizer_path)
    datasets = []
    for path, flag in ((train_data, "--train_data"), (val_data, "--val_data")):
        datasets.append(SentenceDataset(path, vocab_size=len(tokenizer), flag=flag))
        check_stackable(datasets[-1], batch_size, flag)
    return tokenizer, *datasets


TINY_REFERENCE = REPO / "data" / "tiny_reference.json"
TINY_LOSS_ATOL = 1e-4  # "to 4 decimals", as the handout asks of tiny_metrics.txt


def tiny_verdict(args, train_losses, valid_losses):
    """For the handout's tiny command, one line: did it reproduce the reference points to 4 decimals?

    The command overwrites the committed tiny_*.txt files, so the reference is kept apart, in
    data/tiny_reference.json. Other commands get None.
    """
    try:
        reference = json.loads(TINY_REFERENCE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    settings = {key: getattr(args, key) for key in reference["settings"]}
    for key in ("train_data", "val_data", "tokenizer"):
        path = Path(settings[key])
        settings[key] = str(path.resolve().relative_to(REPO)) if path.resolve().is_relative_to(REPO) else str(path)
    if settings != reference["settings"]:
        return None
    where = TINY_REFERENCE.relative_to(REPO)
    if len(train_losses) != len(reference["train_losses"]):
        return f"tiny command: NOT reproduced: {len(train_losses)} points, {where} has {len(reference['train_losses'])}"
    pairs = [(f"train point {i}", a, b) for i, (a, b) in enumerate(zip(train_losses, reference["train_losses"]))]
    pairs += [(f"valid point {i}", a, b) for i, (a, b) in enumerate(zip(valid_losses, reference["val_losses"]))]
    worst = max(pairs, key=lambda p: abs(p[1] - p[2]))
    gap = abs(worst[1] - worst[2])
    if gap <= TINY_LOSS_ATOL:
        return (f"tiny command: reproduced {where} to 4 decimals (largest |difference| {gap:.1g} over "
                f"{len(pairs)} points; made with {reference['made_with']})")
    return (f"tiny command: NOT reproduced: {worst[0]} is {worst[1]:.6f}, {where} has {worst[2]:.6f} "
            f"(|difference| {gap:.2g}; made with {reference['made_with']})")


def shown(path):
    """A path as the messages show it: relative to the current folder when it is inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def kit_path(path):
    """A relative path that is not here but is in the kit's folder is the kit's (data/..., my_tokenizer)."""
    path = Path(path)
    if not path.is_absolute() and not path.exists() and (REPO / path).exists():
        return REPO / path
    return path


def run_name(settings, seed):
    """The run folder's name for these sizes, batch, sequences and seed (experiments.py's too)."""
    s = settings
    return (f"e{s['embed_dim']}_h{s['hidden_dim']}_k{s['dk']}_v{s['dv']}_b{s['batch_size']}"
            f"_n{s['num_sequences']}_s{seed}")


def run_folder(args):
    """runs/NAME for a command without output flags: ``run_name``, then whatever else is not the default."""
    defaults = build_parser()
    extras = [f"{key}{getattr(args, key):g}" for key in ("lr", "grad_clip", "val_batches")
              if getattr(args, key) != defaults.get_default(key)]
    if args.activation != defaults.get_default("activation"):
        extras.insert(0, args.activation)
    for path, default in ((args.train_data, DATA_DIR / PREPARED[0]), (args.val_data, DATA_DIR / PREPARED[1])):
        if Path(path).resolve() != default.resolve():
            extras.append(Path(path).stem)
    if kit_path(args.tokenizer).resolve() != (REPO / DEFAULT_TOKENIZER).resolve():
        extras.append(Path(args.tokenizer).name)
    return RUNS / "_".join([run_name(vars(args), args.seed), *(re.sub(r"[^\w.-]+", "-", x) for x in extras)])


def build_default_data(tokenizer_path):
    """prepare_data.py's stages into DATA_DIR: the first run of a fresh clone, data flags at their defaults."""
    import contextlib
    import io
    import prepare_data
    targets = [DATA_DIR / name for name in PREPARED]
    downloaded = DATA_DIR / prepare_data.HUB_FILE
    origin = (prepare_data.DEFAULT_SOURCE if prepare_data.DEFAULT_SOURCE.exists() else
              downloaded if downloaded.is_file() else prepare_data.HUB_URL)
    print(f"{shown(targets[0])} and {shown(targets[1])} are not built yet: building them from "
          f"{shown(origin) if isinstance(origin, Path) else origin} with prepare_data.py's stages", flush=True)
    try:
        options = prepare_data.parse_args(["--out_dir", str(DATA_DIR), "--tokenizer", str(kit_path(tokenizer_path))])
        with contextlib.redirect_stdout(io.StringIO()):  # its lines are the one above, for this run
            options.source = str(prepare_data.resolve_source(None, DATA_DIR))
            prepare_data.build_splits(options, prepare_data.load_tokenizer(options.tokenizer))
    except prepare_data.DataError as e:
        raise InputError(f"--train_data {shown(targets[0])}: no such file, and building it failed: "
                         + str(e).replace("pass --source PATH", "build it with: python3 prepare_data.py --source PATH"))


def file_sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# What a resumed command must repeat, in the order a difference is reported.
RESUME_KEYS = ("embed_dim", "hidden_dim", "dk", "dv", "activation", "num_sequences", "batch_size", "train_data",
               "val_data", "tokenizer", "seed", "lr", "grad_clip", "val_batches")
FILE_KEYS = {"train_data": "", "val_data": "", "tokenizer": "tokenizer.json"}


def run_identity(args):
    """The settings that make a run's numbers, with each file by its sha256: a resume must match them."""
    return {key: file_sha256(kit_path(getattr(args, key)) / FILE_KEYS[key]) if key in FILE_KEYS else getattr(args, key)
            for key in RESUME_KEYS}


def check_same_run(saved, identity, args, where):
    """An InputError naming the first setting in which this command differs from the saved run."""
    recorded, saved_args = saved["training"].get("identity", {}), saved.get("args", {})
    for key in RESUME_KEYS:
        if recorded.get(key) == identity[key]:
            continue
        if key in FILE_KEYS:
            raise InputError(f"--resume: --{key} {shown(getattr(args, key))} is not the file {where} was trained "
                             f"with (its --{key} was {saved_args.get(key)}; the contents differ)")
        raise InputError(f"--resume: {where} was saved by a run with --{key} {saved_args.get(key)}, this command has "
                         f"--{key} {identity[key]}; give its settings, or leave out --resume to start afresh")


def saved_run(path):
    """The checkpoint at ``path`` if there is one, else None; an InputError if it holds no training state."""
    if not Path(path).exists():
        return None
    checkpoint = read_checkpoint(path)
    if not isinstance(checkpoint.get("training"), dict):
        raise InputError(f"--checkpoint {path}: holds a model but no training state to resume (written by "
                         "rnn.py before --resume existed, or by checkpoint_dict)")
    return checkpoint


def saved_position(checkpoint):
    t = checkpoint["training"]
    return f"saved after batch {t['next_batch'] - 1:,} of {t['num_batches']:,}"


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during training; ``saved`` says where the last save is, or is None."""

    def __init__(self, saved=None):
        super().__init__(saved)
        self.saved = saved


def output_writes(outputs, train_losses, valid_losses):
    return [(outputs["--train_losses_out"], text_writer("".join(f"{x}\n" for x in train_losses))),
            (outputs["--val_losses_out"], text_writer("".join(f"{x}\n" for x in valid_losses))),
            (outputs["--metrics_out"], text_writer(f"Final Train Loss: {train_losses[-1]}\n"
                                                   f"Final Valid Loss: {valid_losses[-1]}\n"))]


def remove_stale_temporaries(paths):
    """The temporary files a killed run's atomic writes left beside its outputs."""
    import glob
    for path in paths:
        path = Path(path)
        for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
            tmp.unlink(missing_ok=True)


def plan_outputs(args):
    """{flag: path} of the outputs, and the run folder (None when an output flag is given)."""
    folder = None
    if all(getattr(args, dest) is None for dest, _ in TEXT_OUTPUTS):
        folder = run_folder(args)
        for dest, name in TEXT_OUTPUTS:
            setattr(args, dest, str(folder / name))
        if args.checkpoint is None:
            args.checkpoint = str(folder / "model.pt")
    else:
        for dest, name in TEXT_OUTPUTS:
            if getattr(args, dest) is None:
                setattr(args, dest, name)
    outputs = {f"--{dest}": getattr(args, dest) for dest, _ in TEXT_OUTPUTS}
    if args.checkpoint is not None:
        outputs["--checkpoint"] = args.checkpoint
    return outputs, folder


def guard_run_folder(folder, args):
    """A run folder's finished run is not overwritten, nor its unfinished one started over, unless asked."""
    if args.resume or args.force:
        return
    saved = saved_run(args.checkpoint) if Path(args.checkpoint).exists() else None
    finished = saved["training"]["finished"] if saved is not None else (folder / "metrics.txt").exists()
    if finished:
        raise InputError(f"{shown(folder)}: holds a finished run of these settings; pass --force to train it again "
                         "and overwrite it, or name the outputs (--metrics_out, ...)")
    if saved is not None:
        raise InputError(f"{shown(folder)}: holds an unfinished run of these settings ({saved_position(saved)}); "
                         "add --resume to continue it, or --force to start it over")


def train_main(args):
    """Train as the starter's main does; returns (train_losses, valid_losses, seconds of training).

    With a checkpoint, the whole state is saved there at every point; ``args.resume``
    continues from it. Run by experiments.py too.
    """
    args.tokenizer = args.tokenizer or DEFAULT_TOKENIZER
    at_defaults = args.train_data is None and args.val_data is None
    args.train_data = str(kit_path(args.train_data) if args.train_data is not None else DATA_DIR / PREPARED[0])
    args.val_data = str(kit_path(args.val_data) if args.val_data is not None else DATA_DIR / PREPARED[1])
    outputs, folder = plan_outputs(args)
    if folder is None:
        for flag, path in outputs.items():
            check_writable(path, flag)
    device = resolve_device(args.device)
    if at_defaults and not all(Path(p).is_file() for p in (args.train_data, args.val_data)):
        build_default_data(args.tokenizer)
    tokenizer, train_dataset, valid_dataset = training_inputs(args.tokenizer, args.train_data, args.val_data,
                                                              args.batch_size)
    vocab_size = len(tokenizer)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        for flag, path in outputs.items():
            check_writable(path, flag)
        guard_run_folder(folder, args)
        print(f"outputs go to {shown(folder)}/ (no output flags given)")
    checkpoint = args.checkpoint
    identity = run_identity(args) if checkpoint is not None else None
    saved = None
    if args.resume:
        saved = saved_run(checkpoint)
        if saved is None:
            print(f"--resume: no save at {shown(checkpoint)} yet; starting afresh")
        else:
            check_same_run(saved, identity, args, shown(checkpoint))
    if checkpoint is not None:
        remove_stale_temporaries(outputs.values())
    if saved is not None and saved["training"]["finished"]:
        t = saved["training"]
        atomic_write_all(output_writes(outputs, t["train_losses"], t["valid_losses"]))
        print(f"--resume: the run in {shown(checkpoint)} finished earlier ({len(t['train_losses'])} points, "
              f"{t['seconds']:.1f} s); nothing trained, its loss and metrics files written again from it")
        return t["train_losses"], t["valid_losses"], t["seconds"]

    torch.manual_seed(args.seed)
    lm = RNNLanguageModel(args.embed_dim, args.hidden_dim, vocab_size, args.dk, args.dv,
                          activation=args.activation).to(device)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(lm.parameters(), lr=args.lr)
    resume, seconds_before = None, 0.0
    num_batches = args.num_sequences // args.batch_size
    if saved is not None:
        lm.load_state_dict(saved["state_dict"])
        optimizer.load_state_dict(saved["training"]["optimizer"])
        resume = {key: saved["training"][key] for key in ("next_batch", "running", "train_losses", "valid_losses", "rng")}
        seconds_before = saved["training"]["seconds"]
        print(f"--resume: continuing {shown(checkpoint)}, {saved_position(saved)} "
              f"({len(resume['train_losses'])} points, {seconds_before:.1f} s of training kept)")
    starters = ", the starter's" if args.val_batches == 1 else ""
    print(f"training on {device}: {len(train_dataset):,} train / {len(valid_dataset):,} validation sequences, "
          f"{sum(p.numel() for p in lm.parameters()):,} parameters; each point's valid loss is over the "
          f"{validation_tag(args.val_batches)} (--val_batches {args.val_batches}{starters})")

    def state_dict_with(state, finished):
        record = checkpoint_dict(lm, args.tokenizer, vars(args))
        record["training"] = {**state, "finished": finished, "num_batches": num_batches,
                              "seconds": seconds_before + time.perf_counter() - start,
                              "optimizer": optimizer.state_dict(), "identity": identity}
        return record

    def save_point(state):
        atomic_write(checkpoint, lambda tmp: torch.save(state_dict_with(state, False), tmp))

    from tqdm import tqdm
    start = time.perf_counter()
    first = resume["next_batch"] if resume is not None else 0
    try:
        with tqdm(total=num_batches * args.batch_size, initial=first * args.batch_size, unit="seq", disable=None,
                  dynamic_ncols=True) as bar:
            train_data = train_loader(train_dataset, args.num_sequences, args.batch_size, bar.write, first)
            valid_data = DataLoader(valid_dataset, batch_size=args.batch_size, shuffle=False)
            train_losses, valid_losses = train(lm, train_data, valid_data, loss_fn, optimizer, args.num_sequences,
                                               args.batch_size, max_grad_norm=args.grad_clip,
                                               val_batches=args.val_batches, log=bar.write, progress=bar,
                                               on_point=save_point if checkpoint is not None else None,
                                               resume=resume)
        writes = output_writes(outputs, train_losses, valid_losses)
        if checkpoint is not None:  # last: a finished checkpoint means every output was written
            final = state_dict_with(loop_state(num_batches, 0.0, train_losses, valid_losses), True)
            writes.append((checkpoint, lambda tmp: torch.save(final, tmp)))
        seconds = seconds_before + time.perf_counter() - start
        atomic_write_all(writes)
    except KeyboardInterrupt:
        try:  # the file itself says where its last save is, even one that landed as Ctrl-C came
            last = saved_run(checkpoint) if checkpoint is not None else None
        except InputError:
            last = None
        if last is None or last["training"]["finished"]:
            raise Interrupted() from None
        raise Interrupted(f"{shown(checkpoint)} holds the run, {saved_position(last)}") from None
    session = f" ({time.perf_counter() - start:.1f} s of it now)" if saved is not None else ""
    print(f"done in {seconds:.1f} s{session}: Final Train Loss {train_losses[-1]}, Final Valid Loss "
          f"{valid_losses[-1]}; wrote {', '.join(shown(path) for path in outputs.values())}")
    verdict = tiny_verdict(args, train_losses, valid_losses)
    if verdict is not None:
        print(verdict)
    return train_losses, valid_losses, seconds


def main(argv=None):
    args = parse_args(argv)
    try:
        if args.prompt is not None:
            sample_main(args)
        else:
            train_main(args)
    except (InputError, FloatingPointError) as e:
        sys.exit(f"rnn.py: error: {e}")
    except OSError as e:  # a write that failed despite the checks (disk full, a race)
        sys.exit(f"rnn.py: error: {e.filename or ''}: {e.strerror or e}")
    except KeyboardInterrupt as e:
        saved = getattr(e, "saved", None)
        print("rnn.py: interrupted; no output written"
              + (f"; {saved}: the same command with --resume continues it" if saved else ""), file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
