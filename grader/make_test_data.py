"""Regenerate the reference data: test_data/*.pt, the component tests' stored inputs, weights
and expected outputs, and data/tiny_reference.json, the tiny command's reference points.

    python3 grader/make_test_data.py            # rewrite them from the kit's rnn.py
    python3 grader/make_test_data.py --check    # regenerate in memory, compare with the files

Run it under the course's environment (requirements.txt): the reference numbers are the
course's. Inputs and weights are drawn under seed 42 and the model's initial weights under
the starter's seed 10601, as the handout's tests do; the expected outputs are what the kit's
rnn.py computes from them. Sampled tokens are not stored (torch.multinomial's draws differ
between torch versions; the component tests draw them afresh). Every file is a dict of plain
tensors, numbers and lists, so ``torch.load(path, weights_only=True)`` reads it. tiny_reference.json
copies the points of the committed data/tiny_*.txt files and the tiny command's settings, so that
the command can say whether it reproduced them. Which cases there are is grader/components.py's. ``fresh_cases(SEED)`` draws new cases of the same shape --
random sizes, weights and inputs, expected values from the kit's rnn.py -- for ``python3
test_runner.py --fresh SEED``, which the Gradescope autograder runs with a new seed each
time, so that answers copied from test_data/ earn nothing there. ``--check`` compares within
the component tests' own tolerances, so it passes on other CPU kernels and torch versions. The kit's tests check these
expectations against an independent implementation (tests/literal/rnn.py) and against this script.
"""

import argparse
import io
import json
import sys
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn as nn

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
import rnn  # noqa: E402  (the kit's own, from the repository root)
from grader import components  # noqa: E402
from kit import tiny  # noqa: E402
from kit.data import DEFAULT_TOKENIZER  # noqa: E402  (what rnn.py trains with when --tokenizer is not given)
from kit.files import atomic_write, atomic_write_text  # noqa: E402
from test_cases.helpers import ATOL, LOSS_ATOL, RTOL, reference_logits, starter_draws  # noqa: E402
from test_cases.test_train import NOT_DEFINED_BY_THE_EQUATIONS  # noqa: E402

TEST_DATA = REPO / "test_data"


class Dims(NamedTuple):
    """The sizes of a case and the seed its inputs and weights are drawn under."""
    B: int
    T: int
    E: int
    H: int
    DK: int
    DV: int
    V: int
    seed: int


STORED = Dims(B=2, T=6, E=4, H=5, DK=3, DV=6, V=11, seed=42)  # dk != dv, so a swapped size shows


class NotTelling(AssertionError):
    """A drawn case that would not tell a mistake from the right answer."""


def require(condition, why):
    if not condition:
        raise NotTelling(why)


def randn(*shape, scale=1.0):
    return torch.randn(*shape) * scale


def linear_weights(prefix, n_in, n_out, scale=0.5):
    return {f"{prefix}.weight": randn(n_out, n_in, scale=scale), f"{prefix}.bias": randn(n_out, scale=scale)}


def case_rnn_cell(d=STORED):
    torch.manual_seed(d.seed)
    weights = {**linear_weights("i2h", d.E, d.H), **linear_weights("h2h", d.H, d.H)}
    x, h = randn(d.B, d.E), randn(d.B, d.H)
    cell = rnn.RNNCell(d.E, d.H)
    cell.load_state_dict(weights)
    with torch.no_grad():
        expected = cell(x, h)
    require(0 < int((expected == 0).sum()) < expected.numel(), "ReLU should cut some values and keep others")
    return {"sizes": [d.E, d.H], "weights": weights, "input": x, "hidden_state": h, "expected": expected}


def case_rnn(d=STORED):
    torch.manual_seed(d.seed)
    weights = {**linear_weights("cell.i2h", d.E, d.H), **linear_weights("cell.h2h", d.H, d.H), **linear_weights("out", d.H, d.H)}
    sequence = randn(d.B, d.T, d.E)
    model = rnn.RNN(d.E, d.H)
    model.load_state_dict(weights)
    # step's preceding states are drawn apart from forward's, which the child must not be given.
    prefix_states = randn(d.B, 3, d.H).abs()
    with torch.no_grad():
        hidden_states, output_states = model(sequence)
        first = model.step(sequence[:, 0])
        from_states = model.step(sequence[:, 3], prefix_states)
    return {"sizes": [d.E, d.H], "weights": weights, "sequence": sequence, "prefix_states": prefix_states,
            "step_first": list(first), "step_from_states": list(from_states),
            "hidden_states": hidden_states, "output_states": output_states}


def case_self_attention(d=STORED):
    torch.manual_seed(d.seed)
    weights = {**linear_weights("query_transform", d.H, d.DK), **linear_weights("key_transform", d.H, d.DK),
               **linear_weights("value_transform", d.H, d.DV), **linear_weights("output_transform", d.DV, d.H)}
    y_all = randn(d.B, d.T, d.H)
    attention = rnn.SelfAttention(d.H, d.DK, d.DV)
    attention.load_state_dict(weights)
    with torch.no_grad():
        step4, step1, forward = attention.step(y_all[:, :4]), attention.step(y_all[:, :1]), attention(y_all)
    return {"sizes": [d.H, d.DK, d.DV], "weights": weights, "y_all": y_all,
            "step_4": step4, "step_1": step1, "forward": forward}


def initial_state(d):
    torch.manual_seed(rnn.SEED)
    lm = rnn.RNNLanguageModel(d.E, d.H, d.V, d.DK, d.DV)
    return {k: v.detach().clone() for k, v in lm.state_dict().items()}


def moved(state, seed, scale=0.05):
    """``state`` with every weight moved a little: the weights a model check runs on, apart from the
    seed-10601 initial weights, which the initial-weights check expects and no child is given."""
    generator = torch.Generator().manual_seed(seed)
    return {k: v + scale * torch.randn(v.shape, generator=generator) for k, v in state.items()}


def model_with(d, state):
    lm = rnn.RNNLanguageModel(d.E, d.H, d.V, d.DK, d.DV)
    lm.load_state_dict(state)
    return lm


def case_language_model(d=STORED):
    initial = initial_state(d)
    state = moved(initial, d.seed)
    torch.manual_seed(d.seed)
    tokens = torch.randint(0, d.V, (d.B, d.T))
    logits_vector = randn(d.V, scale=1.0)
    lm = model_with(d, state)
    with torch.no_grad():
        token_logits, hidden_states, attn_inputs = lm(tokens)
        # The step path generation takes: forward over a prefix, then rnn.step and attention.step.
        _, prefix_hidden, prefix_inputs = lm(tokens[:, :-1])
        h, y = lm.rnn.step(lm.embeddings(tokens[:, -1]), prefix_hidden)
        step_logits = lm.lm_head(lm.attention.step(torch.cat([prefix_inputs, y.unsqueeze(1)], dim=1)))
    # The draws must tell the starter's sampling from a near miss: no temperature, or inverse-CDF draws.
    draws = starter_draws([logits_vector] * 25, 0.7, seed=42)
    require(len(set(draws)) >= 4, "the draws should spread over several tokens")
    require(draws != starter_draws([logits_vector] * 25, 1.0, seed=42), "temperature must matter")
    torch.manual_seed(42)
    cdf = torch.softmax(logits_vector / 0.7, dim=-1).cumsum(0)
    require(draws != [int(torch.searchsorted(cdf, torch.rand(()))) for _ in range(25)], "inverse CDF must differ")
    return {"sizes": [d.E, d.H, d.V, d.DK, d.DV], "initial_state": initial, "state": state,
            "tokens": tokens, "token_logits": token_logits, "hidden_states": hidden_states,
            "attn_inputs": attn_inputs, "step_logits": step_logits, "logits_vector": logits_vector,
            "greedy": int(lm.select_token(logits_vector, 0.0)), "temperature": 0.7, "num_draws": 25}


def case_validate(d=STORED):
    state = moved(initial_state(d), d.seed + 1)
    torch.manual_seed(d.seed)
    batches = [torch.randint(0, d.V, (n, d.T)) for n in (3, 3, 1)]
    lm = model_with(d, state)
    loss_fn = nn.CrossEntropyLoss()
    expected = rnn.validate(lm, batches, loss_fn)  # the starter's: the first batch only
    with torch.no_grad():
        per_batch = [rnn.next_token_loss(lm, b, loss_fn).item() for b in batches]
    token_mean = sum(l * b.shape[0] for l, b in zip(per_batch, batches)) / sum(b.shape[0] for b in batches)
    for other in (sum(per_batch) / len(per_batch), token_mean, per_batch[-1]):
        require(abs(other - expected) > 10 * LOSS_ATOL, "the case must tell the first batch from any mean")
    return {"sizes": [d.E, d.H, d.V, d.DK, d.DV], "state": state, "batches": batches, "expected": expected}


TRAIN_RUNS = [(24, 2), (100, 2), (45, 4), (64, 3)]  # val_index 1, 5, 1, 2


def train_once(d, state, train_batches, valid_batches, num_sequences, batch_size, max_grad_norm, val_batches=1):
    lm = model_with(d, state)
    optimizer = torch.optim.Adam(lm.parameters(), lr=1e-3)
    losses = rnn.train(lm, train_batches, valid_batches, nn.CrossEntropyLoss(), optimizer, num_sequences,
                       batch_size, max_grad_norm=max_grad_norm, val_batches=val_batches)
    return losses, {k: v.detach().clone() for k, v in lm.state_dict().items()}


def case_train(d=STORED):
    state = moved(initial_state(d), d.seed + 5)  # + 2 moves it to where clipping hardly matters
    # A sharper head: gradient norms well above 1, so the starter's clipping changes the run.
    state["lm_head.weight"] = state["lm_head.weight"] * 8
    runs = []
    for i, (num_sequences, batch_size) in enumerate(TRAIN_RUNS):
        torch.manual_seed(d.seed + i)
        num_batches = num_sequences // batch_size
        train_batches = [torch.randint(0, d.V, (batch_size, d.T)) for _ in range(num_batches + 2)]
        valid_batches = [torch.randint(0, d.V, (4, d.T)) for _ in range(2)]
        (train_losses, valid_losses), final_state = train_once(d, state, train_batches, valid_batches,
                                                               num_sequences, batch_size, rnn.MAX_GRAD_NORM)
        (unclipped, _), _ = train_once(d, state, train_batches, valid_batches, num_sequences, batch_size, 0)
        assert max(abs(a - b) for a, b in zip(train_losses[1:], unclipped[1:])) > 10 * LOSS_ATOL, \
            "the case must tell a clipped run from an unclipped one"
        (_, every_batch), _ = train_once(d, state, train_batches, valid_batches, num_sequences, batch_size,
                                         rnn.MAX_GRAD_NORM, val_batches=0)
        assert max(abs(a - b) for a, b in zip(valid_losses, every_batch)) > 10 * LOSS_ATOL, \
            "the case must tell validation on the first batch from validation on every batch"
        runs.append({"num_sequences": num_sequences, "batch_size": batch_size, "train_batches": train_batches,
                     "valid_batches": valid_batches, "train_losses": train_losses, "valid_losses": valid_losses,
                     "final_state": final_state})
    return {"sizes": [d.E, d.H, d.V, d.DK, d.DV], "state": state, "lr": 1e-3, "runs": runs}


def teacher_sequences(d, n=48, length=14, p_end=0.25, noise=0.1):
    """Sequences of a random second-order rule: token t is table[token t-2, token t-1] (</s>, id 1, in
    a quarter of the table), a random token one time in ten. A model trained on them predicts from the
    context, not from the last token alone, and says </s> now and then."""
    g = torch.Generator().manual_seed(d.seed + 3)
    table = torch.randint(2, d.V, (d.V, d.V), generator=g)
    table[torch.rand(d.V, d.V, generator=g) < p_end] = 1
    sequences = torch.randint(0, d.V, (n, length), generator=g)
    for t in range(2, length):
        follow = torch.rand(n, generator=g) >= noise
        sequences[:, t] = torch.where(follow, table[sequences[:, t - 2], sequences[:, t - 1]], sequences[:, t])
    return sequences


def portable_state(d):
    """Weights of the starter's shapes and scales (nn.Linear's U(-1/sqrt(in), 1/sqrt(in)), nn.Embedding's
    N(0, 1)) drawn by Python's random, in float64: the same bits on any CPU kernel and torch, which
    torch's own draws are not."""
    import random
    r = random.Random(f"{d.seed}/generate")
    state, fan_in = {}, {}
    for name, value in initial_state(d).items():
        if name == "embeddings.weight":
            values = [r.gauss(0.0, 1.0) for _ in range(value.numel())]
        else:
            bound = fan_in.setdefault(name.rsplit(".", 1)[0], value.shape[-1]) ** -0.5  # the weight (out, in) comes first
            values = [r.uniform(-bound, bound) for _ in range(value.numel())]
        state[name] = torch.tensor(values, dtype=torch.float64).view(value.shape)
    return state


def trained_state(d, steps=100, lr=0.04):
    """``portable_state`` after ``steps`` full-batch Adam steps on ``teacher_sequences``, returned in
    float32. Training is chaotic (a difference in the last bits grows some e^(1/4) times a step), so
    that ``--check`` finds the same weights on other CPU kernels and torch versions it starts from
    portable weights, runs in float64, few steps, and with Adam's eps at 1e-3, which keeps a
    gradient of rounding noise from becoming a step of lr."""
    lm = rnn.RNNLanguageModel(d.E, d.H, d.V, d.DK, d.DV).double()
    lm.load_state_dict(portable_state(d))
    optimizer = torch.optim.Adam(lm.parameters(), lr=lr, eps=1e-3)
    sequences, loss_fn = teacher_sequences(d), nn.CrossEntropyLoss()
    for _ in range(steps):
        optimizer.zero_grad()
        rnn.next_token_loss(lm, sequences, loss_fn).backward()
        optimizer.step()
    return {k: v.detach().float() for k, v in lm.state_dict().items()}


# Mistaken generate loops a student writes from the starter's (forward over the prefix, then
# rnn.step and attention.step with the new states appended); the generate case must tell each
# from the right one. END is </s>, which the starter does not stop at.
END = 1
GENERATE_MISTAKES = {
    "prepended": "the new states put before the prefix's, not after",
    "not_kept": "the new states used for their own token only, never appended: each token steps from the prefix's",
    "not_appended": "the new states never appended at all: attention over the prefix's only",
    "restarted": "rnn.step from None (h = 0) at each new token",
    "stops_at_end": f"stopping after </s> (id {END})",
}


@torch.no_grad()
def mistaken_generate(lm, prefix, max_tokens, temperature, mistake):
    token_logits, hidden_states, attn_inputs = lm(prefix)
    token = lm.select_token(token_logits[0, -1], temperature)
    tokens = [int(token)]
    for _ in range(max_tokens - 1):
        hidden, attn_input = lm.rnn.step(lm.embeddings(token.view(1)),
                                         None if mistake == "restarted" else hidden_states)
        hidden, attn_input = hidden.unsqueeze(1), attn_input.unsqueeze(1)
        if mistake == "prepended":
            hidden_states, attn_inputs = torch.cat([hidden, hidden_states], 1), torch.cat([attn_input, attn_inputs], 1)
            step_inputs = attn_inputs
        elif mistake == "not_kept":
            step_inputs = torch.cat([attn_inputs, attn_input], 1)
        elif mistake == "not_appended":
            step_inputs = attn_inputs
        else:
            hidden_states, attn_inputs = torch.cat([hidden_states, hidden], 1), torch.cat([attn_inputs, attn_input], 1)
            step_inputs = attn_inputs
        token = lm.select_token(lm.lm_head(lm.attention.step(step_inputs))[0], temperature)
        tokens.append(int(token))
        if mistake == "stops_at_end" and tokens[-1] == END:
            break
    return tokens


def generate_runs(generate):
    """What the three generate checks run, through ``generate(max_tokens, temperature)``."""
    greedy, default = generate(15, 0.0), generate(10, 0.0)
    torch.manual_seed(42)
    return {"greedy": greedy, "default": default, "sampled": generate(15, 0.5)}


def case_generate(d=STORED):
    # A model trained briefly on context-dependent sequences: its next token depends on the
    # context, so a generate that steps from the wrong states returns other tokens, and it says
    # </s> along the way, so a generate that stops there returns fewer.
    state = trained_state(d)
    torch.manual_seed(d.seed)
    prefix = torch.randint(2, d.V, (1, 5))
    lm = model_with(d, state).eval()
    runs = generate_runs(lambda n, t: lm.generate(prefix, max_tokens=n, temperature=t).tolist())
    greedy, default = runs["greedy"], runs["default"]
    sampled = {0.5: runs["sampled"]}
    torch.manual_seed(42)
    sampled[1.0] = lm.generate(prefix, max_tokens=15, temperature=1.0).tolist()
    require(greedy != sampled[0.5] and len(set(sampled[0.5])) >= 4, "sampling should leave the greedy path and spread")
    require(sampled[0.5] != sampled[1.0], "the temperature must change the draws")
    # The greedy path's argmax is clear (float32 on any CPU and torch gives the same tokens).
    rows = reference_logits(state, prefix[0].tolist() + greedy)[prefix.shape[1] - 1:-1]
    top = rows.double().topk(2, dim=-1).values
    require(float((top[:, 0] - top[:, 1]).min()) > 1e-2, "each greedy token should win by a margin")
    # Each mistake returns other greedy tokens: stored greedy tokens tell it on any torch, whose
    # multinomial draws may differ from this one's.
    for mistake, what in GENERATE_MISTAKES.items():
        wrong = generate_runs(lambda n, t: mistaken_generate(lm, prefix, n, t, mistake))
        require(wrong["greedy"] != greedy or wrong["default"] != default,
                f"the greedy checks must tell {what} from the right generate")
    return {"sizes": [d.E, d.H, d.V, d.DK, d.DV], "state": state, "prefix": prefix, "greedy": greedy,
            "default": default, "temperature": 0.5}


# {case name: the function that makes it}, one for each component with checks, in the registry's order.
CASES = {c.case: globals()[f"case_{c.case}"] for c in components.CHECKED}


def fresh_cases(seed, names=None):
    """New cases drawn from ``seed``: random sizes, weights and inputs, expected values from the kit's
    rnn.py, each redrawn (a few times at most) until it tells the mistakes it is there for from the
    right answer, as the stored ones do. The same seed gives the same cases on the same torch."""
    import random
    cases = {}
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name in names or CASES:
            for attempt in range(40):
                r = random.Random(f"{seed}/{name}/{attempt}")
                dk = r.randint(2, 7)
                d = Dims(B=r.randint(1, 4), T=r.randint(5, 9), E=r.randint(2, 8), H=r.randint(3, 8), DK=dk,
                         DV=r.choice([v for v in range(2, 8) if v != dk]), V=r.randint(8, 16),
                         seed=r.randrange(2**31))
                try:
                    cases[name] = CASES[name](d)
                    break
                except AssertionError:
                    continue
            else:
                raise RuntimeError(f"no telling {name} case drawn from seed {seed}")
    finally:
        torch.set_num_threads(previous_threads)
    return cases


def differs(made, stored, path="case"):
    """None when ``stored`` agrees with ``made`` within the component tests' tolerances (float
    tensors to ATOL + RTOL, loss values to LOSS_ATOL, everything else exactly), else where it does not.
    The key bias after training is skipped, as the train check skips it (see test_cases/test_train.py)."""
    a, b = made, stored
    if torch.is_tensor(a) or torch.is_tensor(b):
        if not (torch.is_tensor(a) and torch.is_tensor(b) and a.shape == b.shape and a.dtype == b.dtype):
            return path
        ok = torch.allclose(a, b, atol=ATOL, rtol=RTOL) if a.is_floating_point() else torch.equal(a, b)
        return None if ok else path
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return f"{path} keys"
        return next((d for k in a if k != NOT_DEFINED_BY_THE_EQUATIONS
                     for d in [differs(a[k], b[k], f"{path}[{k!r}]")] if d), None)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return f"{path} length"
        return next((d for i, (x, y) in enumerate(zip(a, b)) for d in [differs(x, y, f"{path}[{i}]")] if d), None)
    if isinstance(a, float) and isinstance(b, float):
        return None if abs(a - b) <= LOSS_ATOL else path
    return None if a == b else path


def tiny_settings():
    """The tiny command's settings: the handout's flags, the rest rnn.py's own defaults for them."""
    args = rnn.parse_args(tiny.ARGS)
    return tiny.settings(args.tokenizer or DEFAULT_TOKENIZER, args.activation, args.lr, args.grad_clip, args.seed,
                         args.val_batches)


def tiny_reference():
    """data/tiny_reference.json's content: the handout's tiny command and the committed data/tiny_*.txt points."""
    train_losses, val_losses = tiny.reference_points()
    return {"settings": tiny_settings(), "train_losses": train_losses, "val_losses": val_losses,
            "made_with": f"torch {torch.__version__}"}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--check", action="store_true",
                   help="compare freshly made cases with the files instead of writing them; exit 1 on a difference")
    args = p.parse_args(argv)
    torch.set_num_threads(1)  # the same summation order on any machine
    differ = []
    for name, make in CASES.items():
        made = make()
        path = TEST_DATA / f"{name}.pt"
        if args.check:
            stored = torch.load(path, weights_only=True) if path.is_file() else None
            where = "the file is missing" if stored is None else differs(made, stored)
            print(f"{path.name}: {'the same, within the tolerances' if where is None else 'DIFFERS at ' + where}")
            if where is not None:
                differ.append(name)
        else:
            TEST_DATA.mkdir(exist_ok=True)
            buffer = io.BytesIO()
            torch.save(made, buffer)
            atomic_write(path, lambda tmp, data=buffer.getvalue(): Path(tmp).write_bytes(data))
            print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    reference = tiny_reference()
    path = tiny.REFERENCE
    if args.check:
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            stored = None
        # The points must be the committed files' exactly; made_with records the torch that made them.
        same = stored is not None and {k: v for k, v in stored.items() if k != "made_with"} == \
            {k: v for k, v in reference.items() if k != "made_with"}
        verdict = "the same as data/tiny_*.txt" if same else "DIFFERS from data/tiny_*.txt (or is missing)"
        print(f"{path.name}: {verdict}")
        if not same:
            differ.append(path.name)
    else:
        atomic_write_text(path, json.dumps(reference, indent=1) + "\n")
        print(f"wrote {path}")
    if differ:
        sys.exit(1)


if __name__ == "__main__":
    main()
