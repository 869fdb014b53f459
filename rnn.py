"""An RNN language model with scaled dot-product self-attention, trained on TinyStories.

The reference completion of the starter code of section 7 of the handout (10-301/10-601
HW7), in the starter's order: ``SentenceDataset``, ``RNNCell``, ``SelfAttention``, ``RNN``,
``RNNLanguageModel``, ``train()``, ``validate()``, ``complete()`` and the command line,
which trains and writes the loss and metrics files, or samples from a saved checkpoint.
The kit's machinery (run folders, resume, the checkpoint format, data checks, the tiny
command's reference) is in the package kit/, which never imports this file.

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
import math
import sys
from pathlib import Path

from kit.cli import interrupt_exits

INTERRUPTED = "rnn.py: interrupted; no output written"

with interrupt_exits(INTERRUPTED, active=__name__ == "__main__"):  # torch takes seconds to import
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from torch.utils.data import DataLoader

    from kit import tiny
    from kit.checkpoint import checkpoint_dict, model_from_checkpoint, read_checkpoint  # noqa: F401  (rnn.checkpoint_dict)
    from kit.cli import SEED_TYPE, OneLineParser, number, resolve_device
    import prepare_data  # the data pipeline, for a first run's data
    from kit.data import DEFAULT_TOKENIZER, check_stackable, load_tokenizer, read_sequences, train_loader
    from kit.files import InputError, kit_path
    from kit.runs import TEXT_OUTPUTS, Run, validation_tag

SEED = 10601  # the starter's seed, set once before the model is built
MAX_GRAD_NORM = 1.0  # the starter's gradient clipping
ACTIVATIONS = ("relu", "tanh")


class SentenceDataset:
    """The prepared token-id sequences of a JSON file (handout 7.4), as the starter's.

    Checked as it is read (kit/data.py): a JSON list of lists of integer ids, each at least
    2 long, each id below ``vocab_size`` when given; an InputError names ``flag`` and the file.
    """

    def __init__(self, path, *, vocab_size=None, flag=""):
        """
        Args:
            path: the JSON file, e.g. data/train_stories.json.
            vocab_size: the tokenizer's vocabulary; ids must lie below it.
            flag: the command-line flag that named the file, for the messages.
        """
        self.path = Path(path)
        self.sequences = read_sequences(path, vocab_size=vocab_size, flag=flag)

    def __len__(self):
        return len(self.sequences)

    def __getitem__(self, idx):
        """Returns: the idx-th sequence, a (T,) long tensor."""
        return self.sequences[idx]


class RNNCell(nn.Module):
    """One step of the recurrence (handout 7.6.1): h_t = phi(W_i2h i_t + W_h2h h_{t-1}).

    phi is ReLU (the starter's) or tanh. Both linear maps keep nn.Linear's default bias,
    as the starter's do.
    """

    def __init__(self, input_dim, hidden_dim, *, activation="relu"):
        """
        Args:
            input_dim: size E of the input i_t.
            hidden_dim: size H of the hidden state.
            activation: "relu" (the starter's) or "tanh".
        """
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.activation = activation
        self.phi = torch.relu if activation == "relu" else torch.tanh
        self.i2h = nn.Linear(input_dim, hidden_dim)
        self.h2h = nn.Linear(hidden_dim, hidden_dim)

    def forward(self, input, hidden_state):
        """Compute the next hidden state.

        Args:
            input: i_t, (B, E).
            hidden_state: h_{t-1}, (B, H).
        Returns:
            h_t, (B, H).
        """
        return self.phi(self.i2h(input) + self.h2h(hidden_state))


class KVCache:
    """Keys (B, t, D_key) and values (B, t, D_value) of the positions generated so far.

    Generation's speed path: ``SelfAttention.step`` given a cache projects only the new
    position. Preallocated to ``capacity`` positions, so appending one copies one.
    """

    def __init__(self, keys, values, capacity):
        B, t, dk = keys.shape
        capacity = max(capacity, t)
        self.k = keys.new_empty(B, capacity, dk)
        self.v = values.new_empty(B, capacity, values.shape[-1])
        self.k[:, :t], self.v[:, :t] = keys, values
        self.length = t

    def append(self, k, v):
        """Add n positions, k (B, n, D_key) and v (B, n, D_value); returns all keys and values so far."""
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
    """

    def __init__(self, hidden_dim, key_dim, value_dim):
        """
        Args:
            hidden_dim: size H of the RNN outputs y_t, and of the attention's output.
            key_dim: D_key, the size of queries and keys.
            value_dim: D_value, the size of values.
        """
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
        """Attention of the last position over all positions so far.

        Args:
            y_all: [y_1, ..., y_t], (B, t, H). With ``cache`` (the kit's), holding the keys
                and values of the earlier positions, it may be just the new position (B, 1, H).
            cache: None (the starter's call), or a KVCache.
        Returns:
            a_t, (B, H).
        """
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
        """Attention of every position, each over the positions up to it.

        All at once, softmax(M(Q K^T / sqrt(D_key))) V with M the causal mask: the same as
        T calls of ``step``, without the loop.

        Args:
            y_all: [y_1, ..., y_T], (B, T, H).
        Returns:
            [a_1, ..., a_T], (B, T, H).
        """
        T = y_all.shape[1]
        # Scaling q rather than the (T, T) scores: the same product, T/D_key times fewer ops.
        q = self.query_transform(y_all) * (1.0 / math.sqrt(self.key_dim))
        k, v = self.key_transform(y_all), self.value_transform(y_all)
        s = torch.bmm(q, k.transpose(1, 2))  # (B, T, T): s[b, t, n] = k_n . q_t / sqrt(Dk)
        future = torch.ones(T, T, dtype=torch.bool, device=y_all.device).triu_(1)
        w = torch.softmax(s.masked_fill_(future, float("-inf")), dim=-1)
        return self.output_transform(torch.bmm(w, v))


class _Recurrence(torch.autograd.Function):
    """h_t = phi(z_t + W h_{t-1}) for all t, with z precomputed and h_0 = 0: ``RNN.forward``'s speed path.

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
    """The recurrent backbone (handout 7.6.3): h_t from ``cell``, then y_t = W_out h_t (+ bias)."""

    def __init__(self, input_dim, hidden_dim, *, activation="relu"):
        """
        Args:
            input_dim: size E of the inputs.
            hidden_dim: size H of the hidden and output states.
            activation: the cell's phi, "relu" (the starter's) or "tanh".
        """
        super().__init__()
        self.hidden_dim = hidden_dim
        self.cell = RNNCell(input_dim, hidden_dim, activation=activation)
        self.out = nn.Linear(hidden_dim, hidden_dim)

    def step(self, input, hidden_prev=None):
        """One step of the sequence.

        Args:
            input: i_t, (B, E).
            hidden_prev: None (h_0 = 0), the preceding hidden states [h_1, ..., h_{t-1}]
                (B, t-1, H), or (the kit's) the last one alone (B, H).
        Returns:
            (h_t (B, H), y_t (B, H)).
        """
        if hidden_prev is None or (hidden_prev.dim() == 3 and hidden_prev.shape[1] == 0):
            h_prev = input.new_zeros(input.shape[0], self.hidden_dim)
        elif hidden_prev.dim() == 3:
            h_prev = hidden_prev[:, -1]
        else:
            h_prev = hidden_prev
        h_t = self.cell(input, h_prev)
        return h_t, self.out(h_t)

    def forward(self, sequence):
        """The whole sequence: the same as T calls of ``step``, with every input projected at once
        and only W_h2h h and phi left in the sequential loop (``_Recurrence``).

        Args:
            sequence: [i_1, ..., i_T], (B, T, E).
        Returns:
            (hidden_states [h_1, ..., h_T] (B, T, H), output_states [y_1, ..., y_T] (B, T, H)).
        """
        i2h, h2h = self.cell.i2h, self.cell.h2h
        # h2h's bias is added at every step, h_0 = 0 included, so it joins i2h's outside the loop.
        z = F.linear(sequence, i2h.weight, i2h.bias + h2h.bias)
        hidden_states = _Recurrence.apply(z, h2h.weight, self.cell.activation == "relu")
        return hidden_states, self.out(hidden_states)


class RNNLanguageModel(nn.Module):
    """Embeddings -> RNN -> self-attention -> LM head (handout 7.6.4).

    i_t = E[x_t]; (h_t, y_t) from ``rnn``; a_t from ``attention``; g_t = W_LM a_t (+ bias),
    and P(x_{t+1} | x_1..x_t) = softmax(g_t). The modules are created in the starter's order
    (embeddings, rnn, attention, lm_head), so under the same seed a student's model starts
    from our weights.
    """

    def __init__(self, embed_dim, hidden_dim, vocab_size, key_dim=None, value_dim=None, *, activation="relu"):
        """
        Args:
            embed_dim: size E of the token embeddings.
            hidden_dim: size H of the RNN.
            vocab_size: V, the tokenizer's vocabulary.
            key_dim, value_dim: the attention's D_key and D_value (default: hidden_dim).
            activation: the RNN cell's phi (the kit's; the starter's is "relu").
        """
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
        """
        Args:
            tokens: [x_1, ..., x_T], (B, T) token ids.
        Returns:
            (token_logits [g_1, ..., g_T] (B, T, V), hidden_states (B, T, H),
             attn_inputs (B, T, H), the RNN's outputs y_t that the attention reads).
        """
        hidden_states, attn_inputs = self.rnn(self.embeddings(tokens))
        return self.lm_head(self.attention(attn_inputs)), hidden_states, attn_inputs

    def shifted_logits(self, tokens):
        """``forward``'s logits at positions 1..T-1 only, the ones with a next token (B, T-1, V).

        Training's speed path: the LM head is most of a step, and slicing its input rather
        than its output saves the last position's logits and a copy of all the others.
        """
        _, attn_inputs = self.rnn(self.embeddings(tokens))
        return self.lm_head(self.attention(attn_inputs)[:, :-1])

    def select_token(self, token_logits, temperature):
        """Pick the next token (handout 7.8): argmax at temperature 0, else one draw of softmax(g / tau).

        The draw is the starter's ``torch.multinomial(probs, 1)``, so under the same seed it
        picks the same token.

        Args:
            token_logits: g, (V,), or (the kit's) a batch of rows (B, V).
            temperature: tau >= 0.
        Returns:
            the token id, a 0-d tensor (or (B,)).
        """
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if temperature == 0:
            return torch.argmax(token_logits, dim=-1)
        probs = torch.softmax(token_logits / temperature, dim=-1)
        return torch.multinomial(probs, 1)[..., 0]

    @torch.no_grad()
    def generate(self, tokens, max_tokens=10, temperature=0.0, *, use_cache=True):
        """Continue ``tokens`` by exactly ``max_tokens`` tokens, as the starter's (it does not stop at </s>).

        ``forward`` reads the prefix and its last logits give the first new token; each
        further token goes through ``rnn.step`` and ``attention.step``. With ``use_cache``
        (the kit's default, for the kit's own modules) the keys and values of earlier positions
        are kept, not recomputed: the same tokens, the same random draws.

        Args:
            tokens: the prefix, (1, t) (or (B, t) for B rows at once).
            max_tokens: how many tokens to add.
            temperature: as in ``select_token``.
        Returns:
            the new tokens, (max_tokens,) (or (B, max_tokens)).
        """
        if max_tokens <= 0:
            raise ValueError(f"max_tokens must be positive, got {max_tokens}")
        # The cache is our modules' (SelfAttention.new_cache, RNN.step from the last state alone);
        # other rnn and attention modules (the grader's stand-ins) get the starter's calls.
        use_cache = use_cache and isinstance(self.rnn, RNN) and isinstance(self.attention, SelfAttention)
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


def next_token_loss(lm, sequence, loss_fn):
    """The loss of each position's prediction of the next token (handout 7.7).

    The target of position t is token t+1; the last position has no next token, so no
    target. Any model with the starter's ``forward`` works; ours computes only the logits
    that have a target.

    Args:
        lm: the model.
        sequence: a batch of token ids, (B, T).
        loss_fn: nn.CrossEntropyLoss(), the mean over the B * (T-1) targets.
    Returns:
        the loss, a scalar tensor.
    """
    if isinstance(lm, RNNLanguageModel):
        logits = lm.shifted_logits(sequence)
    else:
        logits = lm(sequence)[0][:, :-1]
    return loss_fn(logits.reshape(-1, logits.shape[-1]), sequence[:, 1:].reshape(-1))


def train(lm, train_data, valid_data, loss_fn, optimizer, num_sequences, batch_size, *,
          max_grad_norm=MAX_GRAD_NORM, val_batches=1, hook=None):
    """Train on the first ``num_sequences // batch_size`` batches of ``train_data``, in order (handout 7.7).

    Every ``val_index = max(1, int(num_sequences * 0.1) // batch_size)`` batches (batch 0
    included) it records a point: the training loss (batch 0's loss, later the sum of the
    batch losses since the last point divided by ``val_index``) and ``validate``'s loss,
    each rounded to 6 decimals. Gradients are clipped to norm ``max_grad_norm``.

    Args:
        lm: the model; left in training mode.
        train_data, valid_data: DataLoaders of (B, T) batches.
        loss_fn: nn.CrossEntropyLoss().
        optimizer: over lm's parameters.
        num_sequences: sequences to train on.
        batch_size: the loaders' batch size.
        max_grad_norm: the starter's 1.0 (the kit's --grad_clip; 0 turns clipping off).
        val_batches: validation batches read at each point (the starter's 1).
        hook: the kit's (kit/runs.py's Hook): the state to start from when resuming, and
            progress, a log line and a save at each point. None: the starter's loop alone.
    Returns:
        (train_losses, valid_losses), one value a point.
    """
    device = next(lm.parameters()).device
    num_batches = num_sequences // batch_size
    if num_batches < 1:
        raise InputError(f"--num_sequences {num_sequences} is less than --batch_size {batch_size}: "
                         "not one batch to train on")
    val_index = max(1, int(num_sequences * 0.1) // batch_size)
    lm.train()
    batches = iter(train_data)  # a DataLoader's iterator draws its base seed from the torch RNG: before resume()
    first, train_batch_loss, train_losses, valid_losses = hook.resume() if hook is not None else (0, 0.0, [], [])
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
        train_batch_loss += finite(loss.item(), f"the training loss became {{}} at batch {idx} (sequences "
                                                f"{idx * batch_size + 1:,}-{(idx + 1) * batch_size:,}); try a lower --lr")
        if hook is not None:
            hook.batch(sequence.shape[0])
        if idx % val_index == 0:
            train_losses.append(round(train_batch_loss / val_index, 6) if idx != 0 else round(train_batch_loss, 6))
            valid_losses.append(finite(round(validate(lm, valid_data, loss_fn, val_batches), 6),
                                       f"the validation loss became {{}} after batch {idx}"))
            train_batch_loss = 0.0
            lm.train()
            if hook is not None:
                hook.point(idx, train_batch_loss, train_losses, valid_losses)
    return train_losses, valid_losses


def finite(value, message):
    """``value``, or a FloatingPointError saying ``message`` (its {} the value) when it is inf or nan."""
    if not math.isfinite(value):
        raise FloatingPointError(message.format(value))
    return value


def validate(lm, dataset, loss_fn, num_batches=1):
    """The mean loss of the first ``num_batches`` batches of ``dataset``, without gradients.

    The starter reads the first batch only (``num_batches = 1``), so its "validation loss"
    is the loss of one batch: one sequence in the tiny command, 128 at section 5's batch size.

    Args:
        lm: the model; left in eval mode, as the starter's.
        dataset: a DataLoader of (B, T) batches.
        loss_fn: nn.CrossEntropyLoss().
        num_batches: the kit's: N averages the first N batches' losses, 0 every batch's.
    Returns:
        the mean loss, a float.
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


_DICT_HINT_SHOWN = []  # complete() says once per process how to load a checkpoint dict


def complete(lm, tokenizer, prefix, num_tokens=64, temperature=0.0):
    """The starter's ``complete``: the text of the ``num_tokens`` tokens that follow ``prefix``.

    The prompt is encoded without the </s> the tokenizer appends (it would tell the model
    the story had ended). Generation does not stop at </s>, so the text may hold one.

    Args:
        lm: the model, or the checkpoint dict ``torch.load("model.pt")`` returns.
        tokenizer: the kit's tokenizer.
        prefix: the prompt, e.g. "Once upon a time there was a".
        num_tokens: tokens to generate.
        temperature: 0 is greedy.
    Returns:
        the decoded new tokens, a str.
    """
    if isinstance(lm, dict):  # the handout's torch.load("model.pt"): the kit saves a dict, not a model
        lm = model_from_checkpoint(lm, RNNLanguageModel, "complete()").eval()
        if not _DICT_HINT_SHOWN:
            _DICT_HINT_SHOWN.append(True)
            print("rnn.complete: given the checkpoint dict that torch.load returns, so it built the model from it; "
                  "load it once with: lm, checkpoint = rnn.load_checkpoint(\"model.pt\")", file=sys.stderr)
    device = next(lm.parameters()).device
    ids = tokenizer.encode(prefix, add_special_tokens=False)
    new_tokens = lm.generate(torch.tensor([ids], device=device), max_tokens=num_tokens, temperature=temperature)
    return tokenizer.decode(new_tokens.tolist())


def load_checkpoint(path, device="cpu"):
    """Rebuild the model from a checkpoint rnn.py wrote: ``lm, checkpoint = rnn.load_checkpoint("model.pt")``."""
    checkpoint = read_checkpoint(path)
    lm = model_from_checkpoint(checkpoint, RNNLanguageModel, f"--checkpoint {path}")
    return lm.to(device).eval(), checkpoint


# ============================================================================= command line

TRAINING_ONLY = ("train_data", "val_data", "metrics_out", "train_losses_out", "val_losses_out", "embed_dim",
                 "hidden_dim", "dk", "dv", "num_sequences", "batch_size", "activation", "lr", "grad_clip",
                 "val_batches", "resume", "force")
SAMPLING_ONLY = ("temperature", "num_tokens", "num_samples")


def build_parser():
    positive_int, non_negative = number(int, above=0), number(float, at_least=0)
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
    g.add_argument("--embed_dim", type=positive_int, default=128, help="embedding size E (default: %(default)s)")
    g.add_argument("--hidden_dim", type=positive_int, default=128, help="hidden size H (default: %(default)s)")
    g.add_argument("--dk", type=positive_int, default=128, help="key size D_key (default: %(default)s)")
    g.add_argument("--dv", type=positive_int, default=128, help="value size D_value (default: %(default)s)")
    g.add_argument("--num_sequences", type=positive_int, default=50000,
                   help="sequences to train on; more than the file holds walks it again (default: %(default)s)")
    g.add_argument("--batch_size", type=positive_int, default=128, help="sequences per batch (default: %(default)s)")
    g = p.add_argument_group("training (the kit's flags)")
    g.add_argument("--activation", type=str, choices=ACTIVATIONS, default="relu",
                   help="phi of the RNN cell (default: %(default)s)")
    g.add_argument("--lr", type=number(float, above=0), default=1e-3, help="Adam learning rate (default: %(default)s)")
    g.add_argument("--grad_clip", type=non_negative, default=MAX_GRAD_NORM,
                   help="clip the gradient norm to this; 0 turns it off (default: %(default)s)")
    g.add_argument("--val_batches", type=number(int, at_least=0), default=1,
                   help="validation batches read at each point: 1 is the starter's validate(), which reads "
                        "only the first batch; N the first N; 0 all of them, the whole set (default: %(default)s)")
    g = p.add_argument_group("training and sampling")
    g.add_argument("--checkpoint", "--model_path", dest="checkpoint", type=str, default=None,
                   help="training writes the model here (a plain dict), and its whole state at every "
                        "validation point, for --resume (default: the run folder's model.pt when no output "
                        "flag is given, else none is written); sampling reads it")
    g.add_argument("--seed", type=SEED_TYPE, default=SEED, help="seed of the weights, and of sampling (default: %(default)s)")
    g.add_argument("--device", type=str, default="auto",
                   help="auto (CUDA when present), cpu, cuda or cuda:N (default: %(default)s)")
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
    g.add_argument("--temperature", type=non_negative, nargs="+", default=[0.0, 0.3, 0.8],
                   help="one or more temperatures; 0 is greedy (default: 0 0.3 0.8)")
    g.add_argument("--num_tokens", type=positive_int, default=64, help="tokens per completion (default: %(default)s)")
    g.add_argument("--num_samples", type=positive_int, default=1,
                   help="completions per temperature (default: %(default)s)")
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


def output_texts(train_losses, valid_losses):
    """The starter's three files: a loss a line, and the metrics file's two lines."""
    return {"train_losses_out": "".join(f"{x}\n" for x in train_losses),
            "val_losses_out": "".join(f"{x}\n" for x in valid_losses),
            "metrics_out": f"Final Train Loss: {train_losses[-1]}\nFinal Valid Loss: {valid_losses[-1]}\n"}


def train_main(args):
    """Train as the starter's main does; returns (train_losses, valid_losses, seconds of training).

    With a checkpoint, the whole state is saved there at every point, and ``args.resume``
    continues from it (kit/runs.py). Run by experiments.py too.
    """
    run = Run(args, build_parser(), output_texts)
    device = resolve_device(args.device)
    if run.needs_default_data():
        prepare_data.build_default_data(kit_path(args.tokenizer))
    tokenizer = load_tokenizer(args.tokenizer)
    train_dataset = SentenceDataset(args.train_data, vocab_size=len(tokenizer), flag="--train_data")
    valid_dataset = SentenceDataset(args.val_data, vocab_size=len(tokenizer), flag="--val_data")
    check_stackable(train_dataset, args.batch_size, "--train_data")
    check_stackable(valid_dataset, args.batch_size, "--val_data")
    done = run.open()
    if done is not None:
        return done

    torch.manual_seed(args.seed)
    lm = RNNLanguageModel(args.embed_dim, args.hidden_dim, len(tokenizer), args.dk, args.dv,
                          activation=args.activation).to(device)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(lm.parameters(), lr=args.lr)
    with run.training(lm, optimizer) as hook:
        starters = ", the starter's" if args.val_batches == 1 else ""
        hook.log(f"training on {device}: {len(train_dataset):,} train / {len(valid_dataset):,} validation sequences, "
                 f"{sum(p.numel() for p in lm.parameters()):,} parameters; each point's valid loss is over the "
                 f"{validation_tag(args.val_batches)} (--val_batches {args.val_batches}{starters})")
        train_data = train_loader(train_dataset, args.num_sequences, args.batch_size, hook.log, hook.first_batch)
        valid_data = DataLoader(valid_dataset, batch_size=args.batch_size, shuffle=False)
        train_losses, valid_losses = train(lm, train_data, valid_data, loss_fn, optimizer, args.num_sequences,
                                           args.batch_size, max_grad_norm=args.grad_clip,
                                           val_batches=args.val_batches, hook=hook)
        seconds = run.finish(train_losses, valid_losses)
    session = f" ({seconds - run.seconds_before:.1f} s of it now)" if run.saved is not None else ""
    print(f"done in {seconds:.1f} s{session}: Final Train Loss {train_losses[-1]}, Final Valid Loss "
          f"{valid_losses[-1]}; wrote {run.written()}")
    verdict = tiny.verdict(args, train_losses, valid_losses)
    if verdict is not None:
        print(verdict)
    return train_losses, valid_losses, seconds


def sample_main(args):
    """Print completions of --prompt by the model in --checkpoint, as section 5.4(b) asks."""
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
            story = text.split("</s>")[0].strip()
            if not story:
                story = "(nothing: the model ended the story at once, its first token being the end of a story)"
            print(f"--- temperature {temperature:g}, sample {i + 1}:\n{args.prompt} {story}")


def main(argv=None):
    with interrupt_exits(INTERRUPTED):
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
            print(INTERRUPTED + (f"; {saved}: the same command with --resume continues it" if saved else ""),
                  file=sys.stderr)
            sys.exit(130)


if __name__ == "__main__":
    main()
