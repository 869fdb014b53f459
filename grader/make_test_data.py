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
import unittest
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn as nn

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
import rnn  # noqa: E402  (the kit's own, from the repository root)
from grader import components, diagnose, mistakes  # noqa: E402
from kit import tiny  # noqa: E402
from kit.data import DEFAULT_TOKENIZER  # noqa: E402  (what rnn.py trains with when --tokenizer is not given)
from kit.files import atomic_write, atomic_write_text  # noqa: E402
from test_cases.helpers import ATOL, LOSS_ATOL, RTOL, stand_in_generator, starter_draws  # noqa: E402
from test_cases.stand_ins import StandInGenerator, stand_in_lm  # noqa: E402

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


NUM_DRAWS = 40  # select_token's draws in the language model case


def case_language_model(d=STORED):
    initial = initial_state(d)
    state = moved(initial, d.seed, scale=0.5)  # far enough from the start that every part shows in the logits
    torch.manual_seed(d.seed)
    tokens = torch.randint(0, d.V, (d.B, d.T))
    # Positive logits, so that a torch.multinomial of the scaled logits (no softmax) draws too, and
    # spread, so that its draws differ from the starter's softmax.
    logits_vector = 2 * randn(d.V).abs() + 0.1
    lm = model_with(d, state)
    with torch.no_grad():
        token_logits, hidden_states, attn_inputs = lm(tokens)
        # The step path generation takes: forward over a prefix, then rnn.step and attention.step.
        _, prefix_hidden, prefix_inputs = lm(tokens[:, :-1])
        h, y = lm.rnn.step(lm.embeddings(tokens[:, -1]), prefix_hidden)
        step_logits = lm.lm_head(lm.attention.step(torch.cat([prefix_inputs, y.unsqueeze(1)], dim=1)))
    # The draws must tell the starter's sampling from a near miss: no temperature, or inverse-CDF draws.
    draws = starter_draws([logits_vector] * NUM_DRAWS, 0.7, seed=42)
    require(len(set(draws)) >= 4, "the draws should spread over several tokens")
    require_distinct_draws({"logits_vector": logits_vector, "temperature": 0.7},
                           lambda c: starter_draws([c["logits_vector"]] * NUM_DRAWS, c["temperature"], seed=42),
                           mistakes.SAMPLING)
    torch.manual_seed(42)
    cdf = torch.softmax(logits_vector / 0.7, dim=-1).cumsum(0)
    require(draws != [int(torch.searchsorted(cdf, torch.rand(()))) for _ in range(NUM_DRAWS)], "inverse CDF must differ")
    return {"sizes": [d.E, d.H, d.V, d.DK, d.DV], "initial_state": initial, "state": state,
            "tokens": tokens, "token_logits": token_logits, "hidden_states": hidden_states,
            "attn_inputs": attn_inputs, "step_logits": step_logits, "logits_vector": logits_vector,
            "greedy": int(lm.select_token(logits_vector, 0.0)), "temperature": 0.7, "num_draws": NUM_DRAWS}


def stand_in_state(d, head_scale):
    """Weights of the grader's stand-in model (test_cases/stand_ins.py) for the validate and train cases."""
    return {"embeddings.weight": randn(d.V, d.E), "head.weight": randn(d.V, d.E, scale=head_scale),
            "head.bias": randn(d.V, scale=0.5)}


def case_validate(d=STORED):
    torch.manual_seed(d.seed)
    sizes, state = [d.V, d.E], stand_in_state(d, head_scale=1.5)
    batches = [torch.randint(0, d.V, (n, d.T)) for n in (3, 3, 1)]
    lm = stand_in_lm(sizes, state)
    expected = rnn.validate(lm, batches, nn.CrossEntropyLoss())  # the first batch only
    with torch.no_grad():  # other readings of "the validation loss" than the table's: told apart too
        per_batch = [rnn.next_token_loss(lm, b, nn.CrossEntropyLoss()).item() for b in batches]
    token_mean = sum(l * b.shape[0] for l, b in zip(per_batch, batches)) / sum(b.shape[0] for b in batches)
    for other in (token_mean, per_batch[-1]):
        require(abs(other - expected) > MARGIN * LOSS_ATOL, "the case must tell the first batch from the last, "
                                                            "or from a mean over every token")
    return {"sizes": sizes, "state": state, "batches": batches, "expected": expected}


TRAIN_RUNS = [(24, 2), (100, 2), (45, 4), (64, 3)]  # val_index 1, 5, 1, 2


def case_train(d=STORED):
    torch.manual_seed(d.seed)
    # A sharp head: gradient norms well above 1, so that the starter's clipping changes the run.
    sizes, state = [d.V, d.E], stand_in_state(d, head_scale=3.0)
    runs = []
    for i, (num_sequences, batch_size) in enumerate(TRAIN_RUNS):
        torch.manual_seed(d.seed + i)
        num_batches = num_sequences // batch_size
        # Two batches more than train reads, so that reading one too many shows.
        train_batches = [torch.randint(0, d.V, (batch_size, d.T)) for _ in range(num_batches + 2)]
        valid_batches = [torch.randint(0, d.V, (4, d.T)) for _ in range(2)]
        lm = stand_in_lm(sizes, state)
        optimizer = torch.optim.Adam(lm.parameters(), lr=1e-3)
        train_losses, valid_losses = rnn.train(lm, train_batches, valid_batches, nn.CrossEntropyLoss(), optimizer,
                                               num_sequences, batch_size)
        runs.append({"num_sequences": num_sequences, "batch_size": batch_size, "train_batches": train_batches,
                     "valid_batches": valid_batches, "train_losses": train_losses, "valid_losses": valid_losses,
                     "final_state": {k: v.detach().clone() for k, v in lm.state_dict().items()}})
    return {"sizes": sizes, "state": state, "lr": 1e-3, "runs": runs}


END = 1  # </s>, which the starter's generate does not stop at


def case_generate(d=STORED):
    # The grader's stand-ins carry the whole prefix (test_cases/stand_ins.py): a generate that steps from
    # the wrong states returns other tokens. </s> gets a head start, so that the path says it.
    torch.manual_seed(d.seed)
    lm_head_bias = randn(d.V, scale=0.5)
    lm_head_bias[END] += 1.5
    stand_in = {"embeddings.weight": randn(d.V, d.E), "rnn.input.weight": randn(d.H, d.E, scale=0.8),
                "lm_head.weight": randn(d.V, d.H, scale=0.5), "lm_head.bias": lm_head_bias}
    prefix = torch.randint(2, d.V, (1, 5))
    case = {"sizes": [d.E, d.H, d.V, d.DK, d.DV], "stand_in": stand_in, "prefix": prefix, "temperature": 0.5}
    lm = stand_in_generator(rnn, case)
    greedy = lm.generate(prefix, max_tokens=15, temperature=0.0).tolist()
    default = lm.generate(prefix, temperature=0.0).tolist()
    torch.manual_seed(42)
    sampled = lm.generate(prefix, max_tokens=15, temperature=0.5).tolist()
    require(greedy != sampled and len(set(sampled)) >= 3, "sampling should leave the greedy path and spread")
    # The sampled check replays the draws along the path returned: along the right one, each sampling
    # mistake's temperature draws other tokens.
    rows = StandInGenerator(stand_in).logits_before(prefix, sampled)
    require_distinct_draws(case, lambda c: starter_draws(rows, c["temperature"], seed=42), mistakes.GENERATE_SAMPLING)
    # The greedy path's argmax is clear (float32 on any CPU and torch gives the same tokens).
    rows = StandInGenerator(stand_in).logits_before(prefix, greedy)
    top = rows.double().topk(2, dim=-1).values
    require(float((top[:, 0] - top[:, 1]).min()) > 1e-2, "each greedy token should win by a margin")
    return {**case, "greedy": greedy, "default": default}


def require_telling(name, case):
    """The case tells every mistake of its component's table (grader/mistakes.py) from the right answer:
    what the kit's rnn.py returns passes each check, and fails at least one check of each mistake's
    patched case, and no two mistakes of other lines patch it alike. A case that does not is drawn again."""
    component = components.BY_MODULE[f"test_{name}"]
    module = unittest.defaultTestLoader.loadTestsFromName(f"test_cases.{component.module}")
    tests = [t for suite in module for t in suite]
    values = {}
    for test in tests:
        values[test._testMethodName] = type(test).compute_for(test._testMethodName)(type(test).inputs(case), rnn)
        failure = diagnose.verdict(test, case, values[test._testMethodName])
        if failure is not None:  # the kit is wrong, not the draw: never redrawn
            raise RuntimeError(f"the kit's rnn.py fails its own {name} case, {test._testMethodName}: {failure}")
    patches = diagnose.Patches()
    for mistake in mistakes.TABLES[component.name]:
        patched = patches.of(mistake, case)
        require(patched is not None and any(diagnose.verdict(t, patched, values[t._testMethodName]) is not None
                                            for t in tests if t._testMethodName in mistake.checks),
                f"the {name} case should tell this mistake: {mistake.line}")
        # ... by a margin, so that other kernels and torch versions tell it too.
        require(differs(patched, case, scale=MARGIN) is not None, f"the {name} case should tell {mistake.key} by a margin")
    # Two mistakes the case could not tell apart would name neither. (Orders of creation draw other
    # weights by construction; the sampling mistakes' draws are compared by the cases that draw.)
    made = [(m, patches.of(m, case)) for m in mistakes.TABLES[component.name]
            if not m.key.startswith("order ") and m not in mistakes.SAMPLING + mistakes.GENERATE_SAMPLING]
    for i, (a, patched_a) in enumerate(made):
        for b, patched_b in made[i + 1:]:
            if a.line != b.line and set(a.checks) & set(b.checks):
                require(differs(patched_a, patched_b) is not None, f"the {name} case should tell {a.key} from {b.key}")
    return case


def require_distinct_draws(case, draws, sampling):
    """The starter's draws and those of each of the ``sampling`` mistakes (grader/mistakes.py's SAMPLING
    or GENERATE_SAMPLING), as ``draws(case)`` makes them, differ from one another: each can be named."""
    made = [draws(case)] + [draws(m.patch(case)) for m in sampling]
    require(all(made[i] != made[j] for i in range(len(made)) for j in range(i + 1, len(made))),
            "the sampling mistakes' draws should differ from the starter's and from one another")


# {case name: the function that makes it}, one for each component with checks, in the registry's order.
CASES = {c.case: (lambda d=STORED, make=globals()[f"case_{c.case}"], name=c.case: require_telling(name, make(d)))
         for c in components.CHECKED}


# A mistake's expected values differ from the right ones by this many times the checks' tolerance somewhere.
MARGIN = 10

# Draws of a case before giving up: a generate case tells its mistakes apart one time in five or so.
ATTEMPTS = 100


def stored_case(name):
    """The stored case ``name``: drawn from STORED, its seed moved on by one until it tells every mistake."""
    for attempt in range(ATTEMPTS):
        try:
            return CASES[name](STORED._replace(seed=STORED.seed + attempt))
        except NotTelling:
            continue
    raise RuntimeError(f"no telling {name} case from seeds {STORED.seed} to {STORED.seed + ATTEMPTS - 1}")


def fresh_cases(seed, names=None):
    """New cases drawn from ``seed``: random sizes, weights and inputs, expected values from the kit's
    rnn.py, each drawn again (up to ATTEMPTS times) until it tells the mistakes it is there for from the
    right answer, as the stored ones do. The same seed gives the same cases on the same torch."""
    import random
    cases = {}
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name in names or CASES:
            for attempt in range(ATTEMPTS):
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


def differs(made, stored, path="case", scale=1.0):
    """None when ``stored`` agrees with ``made`` within the component tests' tolerances (float
    tensors to ATOL + RTOL, loss values to LOSS_ATOL, everything else exactly), else where it does not.
"""
    a, b = made, stored
    if torch.is_tensor(a) or torch.is_tensor(b):
        if not (torch.is_tensor(a) and torch.is_tensor(b) and a.shape == b.shape and a.dtype == b.dtype):
            return path
        ok = torch.allclose(a, b, atol=scale * ATOL, rtol=scale * RTOL) if a.is_floating_point() else torch.equal(a, b)
        return None if ok else path
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return f"{path} keys"
        return next((d for k in a for d in [differs(a[k], b[k], f"{path}[{k!r}]", scale)] if d), None)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return f"{path} length"
        return next((d for i, (x, y) in enumerate(zip(a, b)) for d in [differs(x, y, f"{path}[{i}]", scale)] if d), None)
    if isinstance(a, float) and isinstance(b, float):
        return None if abs(a - b) <= scale * LOSS_ATOL else path
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
    for name in CASES:
        made = stored_case(name)
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
