"""What the component tests share: a check's two steps, building the starter's modules with a
case's weights, the student's model around the grader's stand-ins, the starter's draws, and comparisons
whose messages say what is wrong (shape, largest difference and where, mean difference, a
preview of expected against actual; for tokens, the first position that differs).

Each check is two steps: ``compute_<check>(case, rnn)``, a static method that makes the
student's calls only (run in a child process by the grader), and the test method, which
compares what it returned (``self.computed()``) with the expected values. Which rnn.py, which
cases and whose results are the grader's (grader/under_test.py); which component a module's
checks belong to is grader/components.py's.
"""

import unittest

import torch

from grader import components, under_test
from kit import tiny
from test_cases.stand_ins import CarryingRNN, LookBackAttention

# float32 throughout, as a student's model runs. An equation computed in another (correct)
# order differs in the last bits; a mistake differs by far more than these.
ATOL, RTOL = 1e-5, 1e-4
LOSS_ATOL = tiny.TOLERANCE  # losses "to 4 decimals", as the handout's tiny_metrics.txt asks


class ComponentTest(unittest.TestCase):
    """A component check: ``compute_<name>(case, rnn)`` makes the student's calls; ``test_<name>`` judges."""

    @property
    def component(self):
        """The name the runner prints (the registry's, by this check's module)."""
        return components.of_test(self).name

    @property
    def case_name(self):
        """test_data/<case_name>.pt, the case this check runs on."""
        return components.of_test(self).case

    # The keys of the case that the compute_* steps read: all a child is given (``inputs``).
    INPUTS = ()

    @classmethod
    def inputs(cls, c):
        """What the student's calls need of case ``c``: its expected values never leave the runner."""
        return {k: c[k] for k in cls.INPUTS}

    def setUp(self):
        self.c = under_test.case(self.case_name)

    @classmethod
    def compute_for(cls, method):
        return getattr(cls, f"compute_{method[len('test_'):]}")

    def computed(self):
        """What this check's ``compute_*`` returned on the rnn.py under test; its failure as an AssertionError."""
        return under_test.computed(self)


def set_linear(linear, weight, bias, name):
    """Set an nn.Linear's ``.weight`` and ``.bias`` as the starter's tests do, or say why it cannot be."""
    for attr, value in (("weight", weight), ("bias", bias)):
        param = getattr(linear, attr, None)
        if param is None:
            raise AssertionError(f"{name}.{attr} is missing: the starter's nn.Linear layers keep their default "
                                 f"bias (nn.Linear(in, out), not bias=False)")
        if tuple(param.shape) != tuple(value.shape):
            raise AssertionError(f"{name}.{attr} has shape {tuple(param.shape)}, expected {tuple(value.shape)}: "
                                 f"check the in/out sizes given to nn.Linear")
        with torch.no_grad():
            param.copy_(value)


def with_weights(rnn, name, c):
    """``rnn.<name>(*c["sizes"])`` of the rnn.py under test, its nn.Linear layers set from ``c["weights"]``."""
    module = getattr(rnn, name)(*c["sizes"])
    set_linears(module, c["weights"], name)
    return module


def set_linears(module, weights, name):
    """Set each nn.Linear that ``weights`` names (``"cell.i2h.weight"``, ``"cell.i2h.bias"``, ...) by attribute."""
    for key in weights:
        if not key.endswith(".weight"):
            continue
        path = key[:-len(".weight")]
        linear = module
        for part in path.split("."):
            linear = getattr(linear, part, None)
            if linear is None:
                raise AssertionError(f"{name} has no attribute {path}: the starter's tests set {name}.{path} by that name")
        set_linear(linear, weights[key], weights[f"{path}.bias"], f"{name}.{path}")


def student_lm(rnn, sizes, state):
    """The student's ``rnn.RNNLanguageModel(*sizes)`` with ``state`` loaded, failing with the first
    parameter that does not fit."""
    module, name = rnn.RNNLanguageModel(*sizes), "RNNLanguageModel"
    mine = module.state_dict()
    for key, value in state.items():
        if key not in mine and key.endswith(".bias") and key[:-len("bias")] + "weight" in mine:
            raise AssertionError(f"{name} has no parameter {key}: the starter's nn.Linear layers keep their "
                                 f"default bias (nn.Linear(in, out), not bias=False)")
        if key not in mine:
            raise AssertionError(f"{name} has no parameter {key}: the starter names the modules "
                                 f"embeddings, rnn (cell.i2h, cell.h2h, out), attention (query_transform, "
                                 f"key_transform, value_transform, output_transform) and lm_head")
        if tuple(mine[key].shape) != tuple(value.shape):
            raise AssertionError(f"{name}.{key} has shape {tuple(mine[key].shape)}, expected {tuple(value.shape)}")
    extra = sorted(set(mine) - set(state))
    if extra:
        raise AssertionError(f"{name} has a parameter the starter's model has not: {extra[0]}")
    module.load_state_dict(state)
    return module


def stand_in_generator(rnn, c):
    """The student's ``rnn.RNNLanguageModel(*sizes)`` in eval mode, its ``embeddings`` and ``lm_head`` set
    from the case's ``stand_in`` weights, its ``rnn`` and ``attention`` replaced by the grader's stand-ins
    (test_cases/stand_ins.py): what its generate does with them is all the generate checks see."""
    lm, w = rnn.RNNLanguageModel(*c["sizes"]), c["stand_in"]
    embeddings = getattr(lm, "embeddings", None)
    if not isinstance(getattr(embeddings, "weight", None), torch.Tensor):
        raise AssertionError("RNNLanguageModel has no embeddings.weight: the starter names its nn.Embedding embeddings")
    if tuple(embeddings.weight.shape) != tuple(w["embeddings.weight"].shape):
        raise AssertionError(f"RNNLanguageModel.embeddings.weight has shape {tuple(embeddings.weight.shape)}, "
                             f"expected {tuple(w['embeddings.weight'].shape)} (vocab_size, embed_dim)")
    with torch.no_grad():
        embeddings.weight.copy_(w["embeddings.weight"])
    if getattr(lm, "lm_head", None) is None:
        raise AssertionError("RNNLanguageModel has no lm_head: the starter names its output layer lm_head")
    set_linear(lm.lm_head, w["lm_head.weight"], w["lm_head.bias"], "RNNLanguageModel.lm_head")
    lm.rnn = CarryingRNN(w["rnn.input.weight"])
    lm.attention = LookBackAttention()
    lm.eval()
    return lm


def starter_draws(logit_rows, temperature, seed):
    """The starter's draw, ``torch.multinomial(softmax(g / temperature), 1)``, for each (V,) row in
    turn after ``torch.manual_seed(seed)``: the tokens a correct completion samples on this torch."""
    torch.manual_seed(seed)
    return [int(torch.multinomial(torch.softmax(g / temperature, dim=-1), 1)) for g in logit_rows]


def _preview(t, start, n=4):
    """n values of the flattened tensor from ``start``, with '...' where it goes on."""
    flat = t.detach().reshape(-1)
    shown = ", ".join(f"{x:.5g}" for x in flat[start:start + n].tolist())
    return f"[{'..., ' if start else ''}{shown}{', ...' if start + n < flat.numel() else ''}]"


def check_tensor(what, actual, expected, atol=ATOL, rtol=RTOL):
    """Assert ``actual`` is close to ``expected``; the message locates the largest difference."""
    if not torch.is_tensor(actual):
        raise AssertionError(f"{what}: expected a tensor of shape {tuple(expected.shape)}, got {type(actual).__name__}")
    if tuple(actual.shape) != tuple(expected.shape):
        raise AssertionError(f"{what}: shape {tuple(actual.shape)}, expected {tuple(expected.shape)}")
    actual = actual.detach().to(expected.dtype)
    diff = (actual - expected).abs()
    bad = diff > atol + rtol * expected.abs()
    if bool(bad.any()) or not bool(torch.isfinite(actual).all()):
        flat = int(torch.nan_to_num(diff, nan=float("inf")).reshape(-1).argmax())
        where = list(torch.unravel_index(torch.tensor(flat), diff.shape)) if diff.dim() else []
        where = [int(i) for i in where]
        raise AssertionError(
            f"{what}: largest |difference| {float(diff.reshape(-1)[flat]):.4g} at index {where} "
            f"(expected {float(expected.reshape(-1)[flat]):.6g}, got {float(actual.reshape(-1)[flat]):.6g}); "
            f"mean |difference| {float(diff.mean()):.4g}; {int(bad.sum())} of {bad.numel()} values off; "
            f"around it, expected {_preview(expected, max(0, flat - 1))}, got {_preview(actual, max(0, flat - 1))}")


def check_tokens(what, actual, expected):
    """Assert two token sequences are equal; the message gives the first position that differs."""
    actual = [int(x) for x in (actual.reshape(-1).tolist() if torch.is_tensor(actual) else actual)]
    expected = [int(x) for x in expected]
    if actual == expected:
        return
    first = next((i for i, (a, b) in enumerate(zip(actual, expected)) if a != b), min(len(actual), len(expected)))
    raise AssertionError(f"{what}: first difference at position {first} of {len(expected)} "
                         f"(expected {expected[first] if first < len(expected) else 'nothing'}, got "
                         f"{actual[first] if first < len(actual) else 'nothing'}); {len(actual)} tokens returned; "
                         f"expected {expected[:12]}, got {actual[:12]}")


def check_losses(what, actual, expected, atol=LOSS_ATOL):
    """Assert two lists of loss points agree to ``atol``; the message gives the first that differs."""
    actual = list(actual)
    if len(actual) != len(expected):
        raise AssertionError(f"{what}: {len(actual)} points, expected {len(expected)} ({expected[:4]}...)")
    for i, (a, e) in enumerate(zip(actual, expected)):
        if not abs(float(a) - e) <= atol:
            raise AssertionError(f"{what}: point {i} is {float(a):.6f}, expected {e:.6f} "
                                 f"(|difference| {abs(float(a) - e):.2g}); expected {expected}, got "
                                 f"{[round(float(x), 6) for x in actual]}")
