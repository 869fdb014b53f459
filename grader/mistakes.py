"""The mistakes the component checks can name: one small table per component.

Each entry is a ``Mistake``: the line the runner prints after ``likely mistake:`` (in the
handout's words, saying where to look), the checks it shows on, and how to compute it: a
function of a case that returns the case with the expected values a completion with that one
mistake produces. grader/diagnose.py runs a failed check again on each of these patched cases
with the student's own output: when exactly one line's patch passes, that is the line printed.
A new mistake is one entry in its component's table.

The expected values under a mistake come from the handout's equations written here a second
time, with knobs (``RIGHT`` holds the right settings), in float64, and from the starter's
train, validate, select_token and generate loops on the grader's stand-ins. This module runs in
the runner's process only: it is never copied where a student's code runs (grader/isolation.py
names what is).
"""

import itertools
import math
from typing import Callable, NamedTuple, Tuple

import torch
import torch.nn as nn

from test_cases.stand_ins import StandInGenerator, stand_in_lm

END = 1  # </s>: the starter's generate does not stop at it
SEED = 10601  # the starter's seed, under which the model's initial weights are drawn
MAX_GRAD_NORM = 1.0  # the starter's clipping


class Mistake(NamedTuple):
    key: str  # its short name (tests/test_mistakes.py's one-mistake completions say which they make)
    line: str  # printed after "likely mistake: "
    checks: Tuple[str, ...]  # the component's test methods it shows on (on each case, on one at least)
    patch: Callable  # case -> the case with the expected values this mistake produces


# ============================================================================ the equations, with knobs

RIGHT = dict(
    act="relu", i2h_bias=1, h2h_bias=1,  # RNNCell: phi, and how many times each bias is added
    carry="last", out=True,  # RNN.step: which preceding state it starts from; y_t = W_out h_t or h_t
    scale="sqrt", softmax="keys", causal=True, query="last",  # SelfAttention
    attend_to="outputs", head_input="attention",  # RNNLanguageModel.forward: what attention and lm_head read
    returns="in_order",  # forward's (token_logits, hidden_states, attn_inputs), or its two states swapped
)


def knobs(**changes):
    unknown = set(changes) - set(RIGHT)
    assert not unknown, unknown
    return {**RIGHT, **changes}


def _w(w, name):
    return w[name].double()


def _linear(w, name, x, bias=1):
    return x @ _w(w, f"{name}.weight").T + bias * _w(w, f"{name}.bias")


def cell(w, x, h, k, p=""):
    """h_t = phi(W_i2h i_t + W_h2h h_{t-1}), (B, E), (B, H) -> (B, H)."""
    z = _linear(w, f"{p}i2h", x, k["i2h_bias"]) + _linear(w, f"{p}h2h", h, k["h2h_bias"])
    return {"relu": torch.relu, "tanh": torch.tanh, "none": lambda v: v}[k["act"]](z)


def rnn_step(w, x, prev, k, p=""):
    """(h_t, y_t) from i_t (B, E) and None or the preceding hidden states (B, t-1, H)."""
    hidden = _w(w, f"{p}cell.h2h.weight").shape[0]
    if prev is None or prev.shape[1] == 0 or k["carry"] == "none":
        h_prev = x.new_zeros(x.shape[0], hidden)
    else:
        h_prev = prev[:, 0] if k["carry"] == "first" else prev[:, -1]
    h = cell(w, x, h_prev, k, f"{p}cell.")
    return h, (_linear(w, f"{p}out", h) if k["out"] else h)


def rnn_forward(w, sequence, k, p=""):
    """(hidden states, output states), each (B, T, H), of sequence (B, T, E), step by step."""
    hs, ys = [], []
    for t in range(sequence.shape[1]):
        h, y = rnn_step(w, sequence[:, t], torch.stack(hs, 1) if hs else None, k, p)
        hs.append(h)
        ys.append(y)
    return torch.stack(hs, 1), torch.stack(ys, 1)


def _attend(w, q_input, y_keys, k, p):
    """W_o sum_n softmax_n(k_n . q / scale) v_n: q_input (B, H), y_keys (B, n, H) -> (B, H)."""
    q = _linear(w, f"{p}query_transform", q_input)
    keys, values = _linear(w, f"{p}key_transform", y_keys), _linear(w, f"{p}value_transform", y_keys)
    dk, hidden, dv = q.shape[-1], q_input.shape[-1], values.shape[-1]
    scale = {"sqrt": math.sqrt(dk), "dk": dk, "none": 1.0, "sqrt_hidden": math.sqrt(hidden), "sqrt_value": math.sqrt(dv)}
    scores = (keys @ q.unsqueeze(-1)).squeeze(-1) / scale[k["scale"]]
    weights = torch.softmax(scores, dim=0 if k["softmax"] == "batch" else -1)
    return _linear(w, f"{p}output_transform", (weights.unsqueeze(1) @ values).squeeze(1))


def attention_step(w, y_all, k, p=""):
    """The attention of the last position of y_all (B, t, H) over all of them (B, H)."""
    return _attend(w, y_all[:, 0] if k["query"] == "first" else y_all[:, -1], y_all, k, p)


def attention_forward(w, y_all, k, p=""):
    """The attention of every position of y_all (B, T, H), each over those up to it (B, T, H)."""
    T = y_all.shape[1]
    if k["softmax"] == "query":  # all positions at once, the softmax taken down the queries
        q = _linear(w, f"{p}query_transform", y_all)
        scores = q @ _linear(w, f"{p}key_transform", y_all).transpose(1, 2) / math.sqrt(q.shape[-1])
        future = torch.ones(T, T, dtype=torch.bool).triu(1)
        weights = torch.softmax(scores.masked_fill(future, float("-inf")), dim=1)
        return _linear(w, f"{p}output_transform", weights @ _linear(w, f"{p}value_transform", y_all))
    if not k["causal"]:
        return torch.stack([_attend(w, y_all[:, t], y_all, k, p) for t in range(T)], 1)
    return torch.stack([attention_step(w, y_all[:, :t + 1], k, p) for t in range(T)], 1)


def _head(w, a, h, y, k):
    return _linear(w, "lm_head", {"attention": a, "outputs": y, "hidden": h}[k["head_input"]])


def lm_forward(state, tokens, k):
    """(token_logits (B, T, V), hidden_states, attn_inputs) of tokens (B, T), as forward returns them."""
    h, y = rnn_forward(state, _w(state, "embeddings.weight")[tokens], k, "rnn.")
    a = attention_forward(state, y if k["attend_to"] == "outputs" else h, k, "attention.")
    return (_head(state, a, h, y, k), *((y, h) if k["returns"] == "swapped" else (h, y)))


def lm_step_path(state, tokens, k):
    """The language model check's step path: forward over tokens[:, :-1], then rnn.step and attention.step.
    The check makes these calls itself, from the states forward returns: what forward feeds its attention
    and lm_head does not reach it."""
    _, h, y = lm_forward(state, tokens[:, :-1], k)
    h_t, y_t = rnn_step(state, _w(state, "embeddings.weight")[tokens[:, -1]], h, k, "rnn.")
    return _linear(state, "lm_head", attention_step(state, torch.cat([y, y_t.unsqueeze(1)], 1), k, "attention."))


# ============================================================================ the patches, per component

def _f(t):
    return t.float()


def patch_rnn_cell(k):
    def patch(c):
        return {**c, "expected": _f(cell(c["weights"], c["input"].double(), c["hidden_state"].double(), k))}
    return patch


def patch_rnn(k):
    def patch(c):
        w, x = c["weights"], c["sequence"].double()
        hidden_states, output_states = rnn_forward(w, x, k)
        first = rnn_step(w, x[:, 0], None, k)
        from_states = rnn_step(w, x[:, 3], c["prefix_states"].double(), k)
        return {**c, "step_first": [_f(t) for t in first], "step_from_states": [_f(t) for t in from_states],
                "hidden_states": _f(hidden_states), "output_states": _f(output_states)}
    return patch


def patch_self_attention(k):
    def patch(c):
        w, y = c["weights"], c["y_all"].double()
        return {**c, "step_4": _f(attention_step(w, y[:, :4], k)), "step_1": _f(attention_step(w, y[:, :1], k)),
                "forward": _f(attention_forward(w, y, k))}
    return patch


def patch_language_model(k):
    def patch(c):
        logits, h, y = lm_forward(c["state"], c["tokens"], k)
        return {**c, "token_logits": _f(logits), "hidden_states": _f(h), "attn_inputs": _f(y),
                "step_logits": _f(lm_step_path(c["state"], c["tokens"], k))}
    return patch


BLOCKS = ("embeddings", "rnn", "attention", "lm_head")
ATTENTION_LAYERS = ("query_transform", "key_transform", "value_transform", "output_transform")


def initial_state(sizes, blocks=BLOCKS, layers=ATTENTION_LAYERS):
    """The starter's model's weights under seed 10601, its modules created in the order given."""
    E, H, V, DK, DV = sizes
    shapes = {"query_transform": (H, DK), "key_transform": (H, DK), "value_transform": (H, DV),
              "output_transform": (DV, H)}
    torch.manual_seed(SEED)
    made = {}
    for block in blocks:
        if block == "embeddings":
            made["embeddings"] = nn.Embedding(V, E)
        elif block == "rnn":
            made["rnn.cell.i2h"], made["rnn.cell.h2h"], made["rnn.out"] = nn.Linear(E, H), nn.Linear(H, H), nn.Linear(H, H)
        elif block == "attention":
            for layer in layers:
                made[f"attention.{layer}"] = nn.Linear(*shapes[layer])
        else:
            made["lm_head"] = nn.Linear(H, V)
    return {f"{module}.{name}": value.detach().clone() for module, m in made.items()
            for name, value in m.state_dict().items()}


def patch_order(blocks=BLOCKS, layers=ATTENTION_LAYERS):
    def patch(c):
        return {**c, "initial_state": initial_state(c["sizes"], blocks, layers)}
    return patch


def patch_draws(temperature=None, of_logits=None):
    """The sampled checks' case with the draws a mistaken select_token makes: ``temperature(tau)`` the
    temperature it effectively divides by, ``of_logits`` the logits it effectively draws from."""
    def patch(c):
        patched = dict(c)
        if temperature is not None:
            patched["temperature"] = temperature(c["temperature"])
        if of_logits is not None:
            patched["logits_vector"] = of_logits(c["logits_vector"], c["temperature"])
        return patched
    return patch


def stand_in_loss(lm, batch, shift):
    logits = lm(batch)[0]
    if shift == "next":
        logits, targets = logits[:, :-1], batch[:, 1:]
    elif shift == "back":
        logits, targets = logits[:, 1:], batch[:, :-1]
    else:
        targets = batch
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


TRAIN_RIGHT = dict(shift="next", validate="first", zero_grad=True, clip=True, point="mean", first_point="own",
                   batches="num_batches")


def validate_loss(lm, batches, t):
    with torch.no_grad():
        losses = [stand_in_loss(lm, b, t["shift"]).item() for b in (batches if t["validate"] == "every" else batches[:1])]
    return sum(losses) / len(losses)


def train_run(c, run, t):
    """The starter's train() on the stand-in of case ``c``, one run, with the settings ``t``."""
    lm = stand_in_lm(c["sizes"], c["state"])
    optimizer = torch.optim.Adam(lm.parameters(), lr=c["lr"])
    num_batches = run["num_sequences"] // run["batch_size"]
    val_index = max(1, int(run["num_sequences"] * 0.1) // run["batch_size"])
    limit = num_batches + (1 if t["batches"] == "one_more" else 0)
    total, train_losses, valid_losses = 0.0, [], []
    for idx, batch in enumerate(run["train_batches"]):
        if idx >= limit:
            break
        if t["zero_grad"]:
            optimizer.zero_grad()
        loss = stand_in_loss(lm, batch, t["shift"])
        loss.backward()
        if t["clip"]:
            nn.utils.clip_grad_norm_(lm.parameters(), MAX_GRAD_NORM)
        optimizer.step()
        total += loss.item()
        if idx % val_index == 0:
            divide = 1 if t["point"] == "sum" or (idx == 0 and t["first_point"] == "own") else val_index
            train_losses.append(round(total / divide, 6))
            valid_losses.append(round(validate_loss(lm, run["valid_batches"], t), 6))
            total = 0.0
    return train_losses, valid_losses, {k: v.detach().clone() for k, v in lm.state_dict().items()}


def patch_validate(**changes):
    t = {**TRAIN_RIGHT, **changes}

    def patch(c):
        return {**c, "expected": validate_loss(stand_in_lm(c["sizes"], c["state"]), c["batches"], t)}
    return patch


def patch_train(**changes):
    t = {**TRAIN_RIGHT, **changes}

    def patch(c):
        runs = []
        for run in c["runs"]:
            train_losses, valid_losses, state = train_run(c, run, t)
            runs.append({**run, "train_losses": train_losses, "valid_losses": valid_losses, "final_state": state})
        return {**c, "runs": runs}
    return patch


@torch.no_grad()
def generate_tokens(c, max_tokens, loop="right", stop_at_end=False):
    """The starter's greedy generate on the case's stand-in model, its loop as ``loop`` says."""
    lm = StandInGenerator(c["stand_in"])
    logits, hidden_states, attn_inputs = lm(c["prefix"])
    token = int(logits[0, -1].argmax())
    tokens = [token]
    for _ in range(max_tokens - 1):
        if stop_at_end and token == END:
            break
        h, y = lm.rnn.step(lm.embeddings(torch.tensor([token])), None if loop == "restarted" else hidden_states)
        h, y = h.unsqueeze(1), y.unsqueeze(1)
        if loop == "prepended":
            hidden_states, attn_inputs = torch.cat([h, hidden_states], 1), torch.cat([y, attn_inputs], 1)
            read = attn_inputs
        elif loop == "not_kept":
            read = torch.cat([attn_inputs, y], 1)
        elif loop == "not_appended":
            read = attn_inputs
        else:
            hidden_states, attn_inputs = torch.cat([hidden_states, h], 1), torch.cat([attn_inputs, y], 1)
            read = attn_inputs
        token = int(lm.lm_head(lm.attention.step(read))[0].argmax())
        tokens.append(token)
    return tokens


def patch_generate(extra=0, **loop):
    def patch(c):
        return {**c, "greedy": generate_tokens(c, 15 + extra, **loop), "default": generate_tokens(c, 10 + extra, **loop)}
    return patch


# ============================================================================ the tables

_CELL = "RNNCell.forward: h_t = ReLU(self.i2h(input) + self.h2h(hidden_state))"
CELL_KNOBS = (
    ("tanh", f"tanh where the starter's RNNCell uses ReLU ({_CELL})", dict(act="tanh")),
    ("no_activation", f"no activation: phi left out ({_CELL})", dict(act="none")),
    ("no_i2h_bias", f"a bias left out: each nn.Linear adds its own bias ({_CELL})", dict(i2h_bias=0)),
    ("no_h2h_bias", f"a bias left out: each nn.Linear adds its own bias ({_CELL})", dict(h2h_bias=0)),
    ("i2h_bias_twice", f"a bias added twice: each nn.Linear adds its own bias once ({_CELL})", dict(i2h_bias=2)),
    ("h2h_bias_twice", f"a bias added twice: each nn.Linear adds its own bias once ({_CELL})", dict(h2h_bias=2)),
)
RNN_KNOBS = (
    ("not_carried", "the hidden state not carried from step to step: each step starts from the last hidden state so far "
     "(RNN.step: hidden_prev[:, -1], zeros only when there is none; RNN.forward: the states so far to each step)",
     dict(carry="none")),
    ("first_state", "RNN.step starts from the first preceding hidden state, hidden_prev[:, 0]; it is the last, hidden_prev[:, -1]",
     dict(carry="first")),
    ("no_out", "the output transform skipped: RNN.step returns y_t = self.out(h_t) as the output state, not h_t", dict(out=False)),
)
_SCORES = "SelfAttention.step: s_n = k_n . q_t / sqrt(D_key)"
ATTENTION_KNOBS = (
    ("no_scale", f"the attention scores are not divided by sqrt(d_k) ({_SCORES})", dict(scale="none"), ("step", "forward")),
    ("scale_dk", f"the attention scores are divided by d_k, not sqrt(d_k) ({_SCORES})", dict(scale="dk"), ("step", "forward")),
    ("scale_hidden", f"the attention scores are divided by sqrt(hidden_dim), not sqrt(d_k), the keys' size ({_SCORES})",
     dict(scale="sqrt_hidden"), ("step", "forward")),
    ("scale_value", f"the attention scores are divided by sqrt(value_dim), not sqrt(d_k), the keys' size ({_SCORES})",
     dict(scale="sqrt_value"), ("step", "forward")),
    ("softmax_batch", "the softmax over the wrong axis: the attention weights are a softmax over the positions (the last axis "
     "of the (B, t) scores), not over the batch", dict(softmax="batch"),
     ("step", "step_first_position", "forward")),
    ("softmax_query", "the softmax over the wrong axis: in SelfAttention.forward each query's weights are a softmax over the "
     "keys (the last axis of the (B, T, T) scores), not over the queries", dict(softmax="query"), ("forward",)),
    ("no_mask", "no causal mask: in SelfAttention.forward position t attends to positions 1..t only (mask the later "
     "ones before the softmax)", dict(causal=False), ("forward",)),
    ("query_first", "the query taken from the wrong position: SelfAttention.step's query is the last position's, "
     "q_t = W_q y_t (y_all[:, -1])", dict(query="first"), ("step", "forward")),
)
LM_KNOBS = (
    ("attention_skipped", "the attention skipped: RNNLanguageModel.forward feeds the RNN's output states to self.attention, and "
     "the attention's output to lm_head", dict(head_input="outputs")),
    ("head_hidden", "lm_head fed the RNN's hidden states: it reads the attention's output, g_t = W_LM a_t",
     dict(head_input="hidden")),
    ("attend_hidden", "the attention fed the RNN's hidden states: it reads the RNN's output states y_t (attn_inputs)",
     dict(attend_to="hidden")),
)
# The temperature a mistaken draw divides the logits by, in effect; the limit tau -> 0 of the starter's
# draw is the argmax (a one-hot softmax).
IGNORED = patch_draws(temperature=lambda tau: 1.0)
MULTIPLIED = patch_draws(temperature=lambda tau: 1.0 / tau)
GREEDY = patch_draws(temperature=lambda tau: 1e-30)
_SAMPLE = "select_token draws torch.multinomial(softmax(g / temperature), 1)"
SAMPLING = (
    Mistake("temperature_ignored", f"the temperature ignored: {_SAMPLE}", ("test_select_token_sampling",), IGNORED),
    Mistake("temperature_multiplied", f"the logits multiplied by the temperature, not divided: {_SAMPLE}",
            ("test_select_token_sampling",), MULTIPLIED),
    Mistake("argmax_always", f"argmax at every temperature: above 0, {_SAMPLE}", ("test_select_token_sampling",),
            GREEDY),
    # torch.multinomial(g / tau) draws in proportion to g (positive logits): softmax(log g) = g / sum(g).
    Mistake("no_softmax", f"no softmax before torch.multinomial: {_SAMPLE}, probabilities, not the scaled logits",
            ("test_select_token_sampling",), patch_draws(temperature=lambda tau: 1.0,
                                                        of_logits=lambda g, tau: torch.log(g / tau))),
)
_SHIFT = "the target of position t is token t+1: logits[:, :-1] against sequence[:, 1:]"
LOSS = (
    ("no_shift", f"the targets not shifted: {_SHIFT}", dict(shift="none")),
    ("back_shift", f"the targets shifted the wrong way: {_SHIFT}", dict(shift="back")),
    ("every_batch", "validate averages every batch: the starter's validate reads the first batch only (num_batches = 1)",
     dict(validate="every")),
)
TRAINING = (
    ("no_zero_grad", "no optimizer.zero_grad() before each batch: the gradients add up from batch to batch", dict(zero_grad=False)),
    ("no_clip", "the gradients not clipped before optimizer.step(): the starter calls "
     "torch.nn.utils.clip_grad_norm_(lm.parameters(), max_grad_norm) between loss.backward() and optimizer.step()",
     dict(clip=False)),
    ("summed", "the loss point summed, not averaged: each point after the first is the sum of the batch losses since "
     "the last point divided by val_index", dict(point="sum")),
    ("first_divided", "the first loss point divided by val_index: batch 0's point is its own loss", dict(first_point="divided")),
    ("one_batch_more", "one batch too many: train stops at batch num_sequences // batch_size (idx >= num_sequences // batch_size)",
     dict(batches="one_more")),
)
# generate's sampled check: the same draws, from select_token's mistake or from what generate passes it.
_PASSES = "generate passes its temperature on to select_token, which draws torch.multinomial(softmax(g / temperature), 1)"
GENERATE_SAMPLING = (
    Mistake("generate_temperature_ignored", f"the draws ignore the temperature: {_PASSES}", ("test_sampled",), IGNORED),
    Mistake("generate_temperature_multiplied", f"the draws are of softmax(g * temperature): {_PASSES}",
            ("test_sampled",), MULTIPLIED),
    Mistake("generate_argmax", f"greedy tokens at temperature 0.5: {_PASSES}", ("test_sampled",), GREEDY),
)
_LOOP = "each new hidden and output state is appended to hidden_states and attn_inputs (torch.cat at dim 1, at the end)"
GENERATION = (
    ("prepended", f"the new states put before the prefix's, not after: {_LOOP}", dict(loop="prepended")),
    ("not_kept", f"the new states not kept: {_LOOP}, so that each step sees every token so far", dict(loop="not_kept")),
    ("not_appended", f"the new output state never appended: attention.step reads it with all the earlier ones ({_LOOP})",
     dict(loop="not_appended")),
    ("restarted", "the hidden state restarted at each new token: rnn.step is given the hidden states so far, not None",
     dict(loop="restarted")),
    ("stops_at_end", "generate stops at </s>: the starter's generates exactly max_tokens tokens, </s> included",
     dict(stop_at_end=True)),
    ("one_token_more", "one token too many: generate returns exactly max_tokens tokens (the first from forward, then "
     "max_tokens - 1 steps)", dict(extra=1)),
    ("one_token_less", "one token too few: generate returns exactly max_tokens tokens (the first from forward, then "
     "max_tokens - 1 steps)", dict(extra=-1)),
)

_RNN_CHECKS = ("test_step_first", "test_step_from_states", "test_forward")
_LM_CHECKS = ("test_forward", "test_step_path")
_TRAIN_CHECKS = ("test_every_batch", "test_every_fifth_batch", "test_batch_of_four", "test_batch_of_three")


def _order_line(blocks, layers):
    if blocks != BLOCKS:
        return (f"the modules created in the order {', '.join(blocks)}: under the seed, weights are drawn in the "
                f"order their layers are created; the starter's __init__ creates {', '.join(BLOCKS)}")
    return (f"SelfAttention's layers created in the order {', '.join(layers)}: under the seed, weights are drawn "
            f"in the order their layers are created; the starter's creates {', '.join(ATTENTION_LAYERS)}")


def _order_key(blocks, layers):
    return "order " + ",".join(blocks if blocks != BLOCKS else layers)


ORDERS = tuple(Mistake(_order_key(blocks, layers), _order_line(blocks, layers), ("test_initial_weights",),
                       patch_order(blocks, layers))
               for blocks in itertools.permutations(BLOCKS) for layers in itertools.permutations(ATTENTION_LAYERS)
               if (blocks == BLOCKS) != (layers == ATTENTION_LAYERS))

TABLES = {
    "RNNCell": tuple(Mistake(key, line, ("test_forward",), patch_rnn_cell(knobs(**k))) for key, line, k in CELL_KNOBS),
    "RNN": tuple(Mistake(key, line, _RNN_CHECKS, patch_rnn(knobs(**k))) for key, line, k in CELL_KNOBS + RNN_KNOBS),
    "SelfAttention": tuple(Mistake(key, line, tuple(f"test_{c}" for c in checks), patch_self_attention(knobs(**k)))
                           for key, line, k, checks in ATTENTION_KNOBS),
    "RNNLanguageModel": (
        tuple(Mistake(key, line, _LM_CHECKS, patch_language_model(knobs(**k)))
              for key, line, k in CELL_KNOBS + RNN_KNOBS + tuple(a[:3] for a in ATTENTION_KNOBS))
        + tuple(Mistake(key, line, ("test_forward",), patch_language_model(knobs(**k))) for key, line, k in LM_KNOBS)
        + (Mistake("swapped_states", "forward returns its states in the wrong order: (token_logits, hidden_states, "
                   "attn_inputs), attn_inputs being the RNN's output states", _LM_CHECKS,
                   patch_language_model(knobs(returns="swapped"))),)
        + ORDERS + SAMPLING),
    "validate": tuple(Mistake(key, line, ("test_validate",), patch_validate(**k)) for key, line, k in LOSS),
    "train": tuple(Mistake(key, line, _TRAIN_CHECKS, patch_train(**k)) for key, line, k in LOSS + TRAINING),
    "generate": (tuple(Mistake(key, line, ("test_greedy", "test_default_length"), patch_generate(**k))
                       for key, line, k in GENERATION)
                 + GENERATE_SAMPLING),
}
