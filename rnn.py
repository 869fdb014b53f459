"""An RNN language model with scaled dot-product self-attention, trained on TinyStories.

The reference solution of section 7 of the handout (10-301/10-601 HW7): the model
(``RNNCell``, ``RNN``, ``SelfAttention``, ``RNNLanguageModel``), its data, ``train()``,
``validate()``, and a command line that trains and writes the loss and metrics files, or
samples from a saved checkpoint.

Train (the handout's tiny command):
    python3 rnn.py --train_data data/tiny_train_stories.json --val_data data/tiny_valid_stories.json \\
        --train_losses_out tiny_train_losses.txt --val_losses_out tiny_val_losses.txt \\
        --metrics_out tiny_metrics.txt --embed_dim 64 --hidden_dim 128 --dk 32 --dv 32 \\
        --num_sequences 128 --batch_size 1
Sample from the checkpoint it saved:
    python3 rnn.py --checkpoint model.pt --prompt "Once upon a time there was a" --temperature 0 0.3 0.8

Only the building blocks the handout allows are used: no nn.RNN, nn.RNNCell,
nn.MultiheadAttention or F.scaled_dot_product_attention.
"""

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

PAD_ID = 0  # <pad>, ignored by the loss
EOS_ID = 1  # </s>, ends every story
REPO = Path(__file__).resolve().parent
DEFAULT_TOKENIZER = "my_tokenizer"
ACTIVATIONS = ("tanh", "relu")


class InputError(Exception):
    """Bad user input: reported as one line naming the file or flag, never a traceback."""


# ============================================================================= the model

def _activation(name):
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {name!r}")
    return torch.tanh if name == "tanh" else torch.relu


class RNNCell(nn.Module):
    """One step of the recurrence (handout 7.6.1): h_t = phi(W_i2h i_t + W_h2h h_{t-1}).

    phi is tanh or ReLU. The handout's equations have no bias terms, so neither do the
    linear maps. Shapes: x_t (B, E), h_prev (B, H) -> h_t (B, H).
    """

    def __init__(self, input_dim, hidden_dim, activation="tanh"):
        super().__init__()
        self.activation = activation
        self.phi = _activation(activation)
        self.i2h = nn.Linear(input_dim, hidden_dim, bias=False)
        self.h2h = nn.Linear(hidden_dim, hidden_dim, bias=False)

    def forward(self, x_t, h_prev):
        return self.phi(self.i2h(x_t) + self.h2h(h_prev))


class _Recurrence(torch.autograd.Function):
    """h_t = phi(z_t + W h_{t-1}) for all t, with z = W_i2h x precomputed, h_0 = 0.

    Forward runs the loop without building an autograd graph (two kernels a step into a
    preallocated buffer); backward walks it once in reverse, one matrix product a step,
    and forms dL/dW with a single product over all steps. Same function as repeated
    ``RNNCell`` steps; tests hold it to them and to gradcheck.
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
        # phi'(z_t) from h_t alone: 1 - h^2 for tanh, [h > 0] for ReLU.
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
    """The recurrent backbone (handout 7.6.3): h_t from ``cell``, y_t = W_out h_t.

    ``step``: x_t (B, E) and the preceding hidden states (B, t-1, H), a list of (B, H),
    or None at t = 1 (h_0 = 0) -> (h_t (B, H), y_t (B, H)).
    ``forward``: x (B, T, E) -> (hiddens (B, T, H), outputs (B, T, H)). It projects all
    inputs at once and runs only h2h and phi in the sequential loop; it equals T calls
    of ``step``.
    """

    def __init__(self, input_dim, hidden_dim, activation="tanh"):
        super().__init__()
        self.cell = RNNCell(input_dim, hidden_dim, activation)
        self.out = nn.Linear(hidden_dim, hidden_dim, bias=False)

    def step(self, x_t, hiddens=None):
        if hiddens is None or len(hiddens) == 0 or (torch.is_tensor(hiddens) and hiddens.shape[1] == 0):
            h_prev = x_t.new_zeros(x_t.shape[0], self.out.in_features)
        else:
            h_prev = hiddens[-1] if isinstance(hiddens, (list, tuple)) else hiddens[:, -1]
        h_t = self.cell(x_t, h_prev)
        return h_t, self.out(h_t)

    def forward(self, x):
        z = self.cell.i2h(x)
        hiddens = _Recurrence.apply(z, self.cell.h2h.weight, self.cell.activation == "relu")
        return hiddens, self.out(hiddens)


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

    q_t = W_q y_t, k_n = W_k y_n, v_n = W_v y_n; s_n = k_n . q_t / sqrt(D_key) for n <= t;
    w = softmax(s); a_t = W_o sum_n w_n v_n.
    ``step``: y (B, t, H) -> a_t (B, H), the attention of the last position. With a
    ``KVCache`` holding the keys and values of y[:, :-1], only y[:, -1] is projected.
    ``forward``: y (B, T, H) -> (B, T, H), all positions at once as
    softmax(M(Q K^T / sqrt(D_key))) V with M the causal mask (position t sees 1..t);
    it equals T calls of ``step``.
    """

    def __init__(self, hidden_dim, key_dim, value_dim):
        super().__init__()
        self.key_dim = key_dim
        self.query_transform = nn.Linear(hidden_dim, key_dim, bias=False)
        self.key_transform = nn.Linear(hidden_dim, key_dim, bias=False)
        self.value_transform = nn.Linear(hidden_dim, value_dim, bias=False)
        self.output_transform = nn.Linear(value_dim, hidden_dim, bias=False)

    def new_cache(self, y, capacity=0):
        """A ``KVCache`` holding the keys and values of every position of y (B, t, H)."""
        return KVCache(self.key_transform(y), self.value_transform(y), capacity)

    def step(self, y, cache=None):
        y_t = y[:, -1]
        q = self.query_transform(y_t)  # (B, Dk)
        if cache is None:
            k, v = self.key_transform(y), self.value_transform(y)
        else:
            k, v = cache.append(self.key_transform(y[:, -1:]), self.value_transform(y[:, -1:]))
        # q (B, 1, Dk) @ k^T rather than k @ q: the same numbers, several times faster on CPU.
        s = torch.bmm(q.unsqueeze(1), k.transpose(1, 2)).squeeze(1) / math.sqrt(self.key_dim)  # (B, t)
        w = torch.softmax(s, dim=-1)
        return self.output_transform(torch.bmm(w.unsqueeze(1), v).squeeze(1))

    def forward(self, y):
        T = y.shape[1]
        # Scaling q rather than the (T, T) scores: the same product, T/D_key times fewer ops.
        q = self.query_transform(y) * (1.0 / math.sqrt(self.key_dim))
        k, v = self.key_transform(y), self.value_transform(y)
        s = torch.bmm(q, k.transpose(1, 2))  # (B, T, T): s[b, t, n] = k_n . q_t / sqrt(Dk)
        future = torch.ones(T, T, dtype=torch.bool, device=y.device).triu_(1)
        w = torch.softmax(s.masked_fill_(future, float("-inf")), dim=-1)
        return self.output_transform(torch.bmm(w, v))


class RNNLanguageModel(nn.Module):
    """Embeddings -> RNN -> self-attention -> LM head (handout 7.6.4).

    i_t = E[x_t]; (h_t, y_t) from ``rnn``; a_t from ``attention``; logits g_t = W_LM a_t,
    P(x_{t+1} | x_1..x_t) = softmax(g_t).
    ``forward``: tokens (B, T) -> (logits (B, T, V), hiddens (B, T, H), outputs (B, T, H)).
    """

    def __init__(self, vocab_size, embed_dim, hidden_dim, key_dim, value_dim, activation="tanh"):
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("embed_dim", embed_dim), ("hidden_dim", hidden_dim),
                            ("key_dim", key_dim), ("value_dim", value_dim)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.config = dict(vocab_size=vocab_size, embed_dim=embed_dim, hidden_dim=hidden_dim,
                           key_dim=key_dim, value_dim=value_dim, activation=activation)
        self.embeddings = nn.Embedding(vocab_size, embed_dim)
        self.rnn = RNN(embed_dim, hidden_dim, activation)
        self.attention = SelfAttention(hidden_dim, key_dim, value_dim)
        self.lm_head = nn.Linear(hidden_dim, vocab_size, bias=False)

    def forward(self, tokens):
        hiddens, outputs = self.rnn(self.embeddings(tokens))
        return self.lm_head(self.attention(outputs)), hiddens, outputs

    def loss(self, tokens):
        """Sum of next-token cross entropies over real targets, and their count.

        Position t predicts token t+1: the last position has no target and pad targets
        are ignored. Only real targets go through the LM head, which is most of the work.
        Shapes: tokens (B, T) -> (scalar, scalar).
        """
        hiddens, outputs = self.rnn(self.embeddings(tokens))
        a = self.attention(outputs)[:, :-1]
        targets = tokens[:, 1:]
        real = targets != PAD_ID
        logits = self.lm_head(a[real])
        return F.cross_entropy(logits, targets[real], reduction="sum"), real.sum()

    @staticmethod
    def select_token(logits, temperature):
        """argmax at temperature 0, else a sample of softmax(logits / temperature). (B, V) -> (B,)."""
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if temperature == 0:
            return logits.argmax(dim=-1)
        probs = torch.softmax(logits.float() / temperature, dim=-1)
        # Inverse-CDF sampling: one uniform a row. torch.multinomial draws V exponentials a
        # row instead, which made it most of a generation step on CPU.
        cdf = probs.cumsum(dim=-1)
        u = torch.rand(probs.shape[0], 1, device=probs.device) * cdf[:, -1:]
        return torch.searchsorted(cdf, u, right=True).squeeze(1).clamp_(max=probs.shape[1] - 1)

    @torch.inference_mode()
    def generate(self, tokens, max_tokens, temperature=0.0, use_cache=True):
        """Continue each row of ``tokens`` (B, T0) by up to ``max_tokens`` tokens -> (B, n).

        ``forward`` reads the prefix; then each new token costs one ``RNN.step`` and one
        ``SelfAttention.step`` over cached keys and values. ``use_cache=False`` is the
        handout's own loop: it keeps every hidden state and output and recomputes all keys
        and values at each step. Stops when every row has produced </s>; a row's positions
        after its </s> hold <pad>.
        """
        if max_tokens <= 0:
            raise ValueError(f"max_tokens must be positive, got {max_tokens}")
        _, hiddens, outputs = self.forward(tokens)
        a = self.attention.step(outputs)
        cache = self.attention.new_cache(outputs, tokens.shape[1] + max_tokens) if use_cache else None
        h = hiddens[:, -1:]
        done = torch.zeros(tokens.shape[0], dtype=torch.bool, device=tokens.device)
        new = []
        for i in range(max_tokens):
            token = self.select_token(self.lm_head(a), temperature).masked_fill_(done, PAD_ID)
            new.append(token)
            done |= token == EOS_ID
            if i == max_tokens - 1 or bool(done.all()):
                break
            if use_cache:
                h_t, y_t = self.rnn.step(self.embeddings(token), h)
                h = h_t.unsqueeze(1)
                a = self.attention.step(y_t.unsqueeze(1), cache)
            else:
                h_t, y_t = self.rnn.step(self.embeddings(token), hiddens)
                hiddens = torch.cat([hiddens, h_t.unsqueeze(1)], dim=1)
                outputs = torch.cat([outputs, y_t.unsqueeze(1)], dim=1)
                a = self.attention.step(outputs)
        return torch.stack(new, dim=1)

    def complete(self, prefix, tokenizer, num_tokens=128, temperature=0.0):
        """Text in, text out: the continuation of ``prefix`` (up to its </s>), as it follows it.

        The prompt is encoded without the </s> the tokenizer appends, which would tell the
        model the story had ended.
        """
        if not prefix or not prefix.strip():
            raise ValueError("the prompt is empty")
        ids = tokenizer.encode(prefix, add_special_tokens=False)
        device = next(self.parameters()).device
        new = self.generate(torch.tensor([ids], device=device), num_tokens, temperature)[0].tolist()
        if EOS_ID in new:
            new = new[:new.index(EOS_ID)]
        head = tokenizer.decode(ids)
        return tokenizer.decode(ids + new)[len(head):]


# ============================================================================= data

def load_sequences(path, vocab_size, flag):
    """Read a JSON list of token-id sequences; an InputError names the flag, file and problem."""
    where = f"{flag} {path}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{where}: no such file")
    except IsADirectoryError:
        raise InputError(f"{where}: is a directory, not a JSON file")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{where}: cannot read it ({getattr(e, 'strerror', None) or e})")
    try:
        data = json.loads(text)
    except ValueError as e:
        raise InputError(f"{where}: not valid JSON ({e})")
    if not isinstance(data, list):
        raise InputError(f"{where}: expected a JSON list of sequences of token ids, got {type(data).__name__}")
    if not data:
        raise InputError(f"{where}: the dataset is empty")
    sequences = []
    for i, seq in enumerate(data):
        if not isinstance(seq, list) or not all(type(x) is int for x in seq):
            raise InputError(f"{where}: sequence {i} is not a list of integer token ids")
        if len(seq) < 2:
            raise InputError(f"{where}: sequence {i} has {len(seq)} token(s); at least 2 are needed "
                             "to predict a next token")
        lo, hi = min(seq), max(seq)
        if lo < 0 or hi >= vocab_size:
            bad = lo if lo < 0 else hi
            raise InputError(f"{where}: sequence {i} has id {bad}, outside the tokenizer's "
                             f"vocabulary of {vocab_size}")
        sequences.append(torch.tensor(seq, dtype=torch.long))
    return sequences


def pad_batch(sequences):
    """Right-pad 1-D id tensors with <pad> to the longest: list of (T_i,) -> (B, max T_i)."""
    return nn.utils.rnn.pad_sequence(sequences, batch_first=True, padding_value=PAD_ID)


def index_stream(n, generator):
    """Indices 0..n-1 in shuffled passes, forever."""
    while True:
        yield from torch.randperm(n, generator=generator).tolist()


# ============================================================================= training

def validate(model, sequences, batch_size=256):
    """Mean next-token cross entropy over every real target of ``sequences``, no gradient."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    # Sorting by length only reduces padding: the sum over tokens is the same.
    ordered = sorted(sequences, key=len)
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    with torch.no_grad():
        for i in range(0, len(ordered), batch_size):
            loss_sum, n = model.loss(pad_batch(ordered[i:i + batch_size]).to(device))
            total += loss_sum.double()
            count += int(n)
    model.train(was_training)
    return float(total) / count


def train(model, train_sequences, val_sequences, num_sequences, batch_size, optimizer,
          seed=0, grad_clip=1.0, log=print, progress=None):
    """Train on ``num_sequences`` sequences drawn in shuffled passes; validate every tenth.

    Each tenth is cut into batches of ``batch_size`` (its last may be short). A point's
    training loss is the token-weighted mean over that tenth's sequences; its validation
    loss is ``validate()``. Returns (train_losses, val_losses), ten each.
    """
    if num_sequences < 10:
        raise InputError(f"--num_sequences must be at least 10 (one per validation point), got {num_sequences}")
    device = next(model.parameters()).device
    stream = index_stream(len(train_sequences), torch.Generator().manual_seed(seed))
    model.train()
    train_losses, val_losses = [], []
    start, seen, step = time.perf_counter(), 0, 0
    for point in range(1, 11):
        end = num_sequences * point // 10
        loss_total, total_tokens = 0.0, 0
        while seen < end:
            size = min(batch_size, end - seen)
            batch = pad_batch([train_sequences[next(stream)] for _ in range(size)])
            total_tokens += int((batch[:, 1:] != PAD_ID).sum())  # counted on the CPU copy
            loss_sum, n = model.loss(batch.to(device, non_blocking=True))
            step += 1
            loss_value = float(loss_sum.detach())
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"the training loss became {loss_value} at step {step} "
                                         f"(sequences {seen + 1:,}-{seen + size:,}); try a lower --lr")
            optimizer.zero_grad(set_to_none=True)
            (loss_sum / n).backward()
            if grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            loss_total += loss_value
            seen += size
            if progress is not None:
                progress.update(size)
        train_losses.append(loss_total / total_tokens)
        val_losses.append(validate(model, val_sequences))
        if not math.isfinite(val_losses[-1]):
            raise FloatingPointError(f"the validation loss became {val_losses[-1]} after step {step}")
        log(f"sequences {seen:,}/{num_sequences:,}  train loss {train_losses[-1]:.4f}  "
            f"val loss {val_losses[-1]:.4f}  {time.perf_counter() - start:.1f} s")
    return train_losses, val_losses


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


def write_atomic(path, text):
    """Write ``text`` as utf-8 to ``path``, atomically."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


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


def checkpoint_dict(model, tokenizer_path, args):
    """A plain dict (config, state_dict, tokenizer path, training arguments): loads with weights_only."""
    return {"config": dict(model.config),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "tokenizer": str(tokenizer_path),
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in args.items()}}


def load_checkpoint(path, vocab_size=None, device="cpu"):
    """Rebuild the model from a checkpoint: ``model, checkpoint = load_checkpoint("model.pt")``."""
    where = f"--checkpoint {path}"
    if not Path(path).is_file():
        raise InputError(f"{where}: no such file")
    try:
        checkpoint = torch.load(path, map_location=device)
        config = checkpoint["config"]
        model = RNNLanguageModel(**config)
    except Exception as e:
        raise InputError(f"{where}: not a checkpoint of rnn.py ({type(e).__name__}: {str(e).splitlines()[0][:100] if str(e) else ''})")
    if vocab_size is not None and config["vocab_size"] != vocab_size:
        raise InputError(f"{where}: made with a vocabulary of {config['vocab_size']}, "
                         f"but the tokenizer has {vocab_size}")
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except Exception as e:
        raise InputError(f"{where}: weights do not fit its config ({str(e).splitlines()[0][:100]})")
    return model.to(device).eval(), checkpoint


def load_tokenizer(path, flag="--tokenizer"):
    """The kit's tokenizer via transformers; an InputError when it is missing or not loadable."""
    path = Path(path)
    if not path.is_absolute() and not path.exists() and (REPO / path).exists():
        path = REPO / path  # "my_tokenizer" works from any working directory
    if not (path / "tokenizer.json").is_file():
        raise InputError(f"{flag} {path}: no tokenizer.json there (the kit's tokenizer is my_tokenizer/)")
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    except Exception as e:
        raise InputError(f"{flag} {path}: cannot load it ({str(e).splitlines()[0][:120]})")
    specials = [tokenizer.convert_tokens_to_ids(t) for t in ("<pad>", "</s>")]
    if specials != [PAD_ID, EOS_ID]:
        raise InputError(f"{flag} {path}: <pad> and </s> have ids {specials}; the kit needs [0, 1]")
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


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line (no usage block): `rnn.py: error: --flag ...`."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def seed_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"must be between 0 and 2**63 - 1, got {text}")
    return value


def parse_args(argv=None):
    p = OneLineParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("training (the handout's flags)")
    g.add_argument("--train_data", type=str, default="data/train_stories.json", help="training sequences, JSON (default: %(default)s)")
    g.add_argument("--val_data", type=str, default="data/valid_stories.json", help="validation sequences, JSON (default: %(default)s)")
    g.add_argument("--metrics_out", type=str, default="metrics.txt", help="final train and validation loss (default: %(default)s)")
    g.add_argument("--train_losses_out", type=str, default="train_losses.txt", help="training loss per validation point (default: %(default)s)")
    g.add_argument("--val_losses_out", type=str, default="val_losses.txt", help="validation loss per validation point (default: %(default)s)")
    g.add_argument("--embed_dim", type=positive(int), default=128, help="embedding size E (default: %(default)s)")
    g.add_argument("--hidden_dim", type=positive(int), default=128, help="hidden size H (default: %(default)s)")
    g.add_argument("--dk", type=positive(int), default=128, help="key size D_key (default: %(default)s)")
    g.add_argument("--dv", type=positive(int), default=128, help="value size D_value (default: %(default)s)")
    g.add_argument("--num_sequences", type=positive(int), default=50000, help="sequences to train on (default: %(default)s)")
    g.add_argument("--batch_size", type=positive(int), default=128, help="sequences per batch (default: %(default)s)")
    g = p.add_argument_group("training (the kit's flags)")
    g.add_argument("--activation", type=str, choices=ACTIVATIONS, default="tanh", help="phi of the RNN cell (default: %(default)s)")
    g.add_argument("--lr", type=positive(float), default=1e-3, help="Adam learning rate (default: %(default)s)")
    g.add_argument("--grad_clip", type=non_negative_float, default=1.0, help="clip the gradient norm to this; 0 turns it off (default: %(default)s)")
    g.add_argument("--seed", type=seed_int, default=0, help="seed of weights, data order and sampling (default: %(default)s)")
    g.add_argument("--device", type=str, default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N (default: %(default)s)")
    g.add_argument("--tokenizer", type=str, default=None,
                   help=f"tokenizer folder; sets the vocabulary (default: {DEFAULT_TOKENIZER} for training, "
                        "the checkpoint's for sampling)")
    g.add_argument("--checkpoint", type=str, default="model.pt", help="checkpoint written by training, read by sampling (default: %(default)s)")
    g = p.add_argument_group("sampling (given --prompt, reads --checkpoint instead of training)")
    g.add_argument("--prompt", type=str, default=None, help="text to continue (default: none, so train)")
    g.add_argument("--temperature", type=non_negative_float, nargs="+", default=[0.0, 0.3, 0.8], help="one or more temperatures; 0 is greedy (default: 0 0.3 0.8)")
    g.add_argument("--num_tokens", type=positive(int), default=128, help="most tokens per sample (default: %(default)s)")
    g.add_argument("--num_samples", type=positive(int), default=1, help="samples per temperature (default: %(default)s)")
    return p.parse_args(argv)


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
    model, checkpoint = load_checkpoint(args.checkpoint, None, resolve_device(args.device))
    tokenizer = load_tokenizer(args.tokenizer or checkpoint.get("tokenizer", DEFAULT_TOKENIZER))
    if model.config["vocab_size"] != len(tokenizer):
        raise InputError(f"--checkpoint {args.checkpoint}: made with a vocabulary of {model.config['vocab_size']}, "
                         f"but the tokenizer has {len(tokenizer)}")
    torch.manual_seed(args.seed)
    for temperature in args.temperature:
        for i in range(args.num_samples):
            text = model.complete(args.prompt, tokenizer, args.num_tokens, temperature)
            print(f"--- temperature {temperature:g}, sample {i + 1}:\n{args.prompt}{text}")


def train_main(args):
    outputs = {"--metrics_out": args.metrics_out, "--train_losses_out": args.train_losses_out,
               "--val_losses_out": args.val_losses_out, "--checkpoint": args.checkpoint}
    for flag, path in outputs.items():
        check_writable(path, flag)
    device = resolve_device(args.device)
    args.tokenizer = args.tokenizer or DEFAULT_TOKENIZER
    tokenizer = load_tokenizer(args.tokenizer)
    vocab_size = len(tokenizer)
    train_sequences = load_sequences(args.train_data, vocab_size, "--train_data")
    val_sequences = load_sequences(args.val_data, vocab_size, "--val_data")

    torch.manual_seed(args.seed)
    model = RNNLanguageModel(vocab_size, args.embed_dim, args.hidden_dim, args.dk, args.dv, args.activation).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    print(f"training on {device}: {len(train_sequences):,} train / {len(val_sequences):,} validation sequences, "
          f"{sum(p.numel() for p in model.parameters()):,} parameters")
    from tqdm import tqdm
    start = time.perf_counter()
    with tqdm(total=args.num_sequences, unit="seq", disable=None, dynamic_ncols=True) as bar:
        train_losses, val_losses = train(model, train_sequences, val_sequences, args.num_sequences,
                                         args.batch_size, optimizer, args.seed, args.grad_clip,
                                         log=bar.write, progress=bar)
    seconds = time.perf_counter() - start
    def text(s):
        return lambda tmp: Path(tmp).write_text(s, encoding="utf-8")
    atomic_write_all([
        (args.train_losses_out, text("".join(f"{x:.6f}\n" for x in train_losses))),
        (args.val_losses_out, text("".join(f"{x:.6f}\n" for x in val_losses))),
        (args.metrics_out, text(f"train_loss: {train_losses[-1]:.6f}\nval_loss: {val_losses[-1]:.6f}\n")),
        (args.checkpoint, lambda tmp: torch.save(checkpoint_dict(model, args.tokenizer, vars(args)), tmp))])
    print(f"done in {seconds:.1f} s: train_loss {train_losses[-1]:.6f}, val_loss {val_losses[-1]:.6f}; "
          f"wrote {args.metrics_out}, {args.train_losses_out}, {args.val_losses_out}, {args.checkpoint}")
    return train_losses, val_losses, seconds


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


if __name__ == "__main__":
    main()
