"""What the component checks run on: the rnn.py under test, the cases (stored in test_data/,
or fresh ones), and what the children computed on them.

Each check of test_cases/ is two steps: ``compute_<check>(case, rnn)`` makes the student's calls
(in a child process, grader/child.py) and ``test_<check>`` compares what it returned with the
expected values, in the runner's own process, which never imports the file. The runner says
here which file, which cases and which results (``set_rnn_path``, ``use_cases``,
``use_results``); a check reads its case and its result through ``case`` and ``computed``.
Run without the runner (``python3 -m unittest test_cases.test_rnn``), ``computed`` imports
the rnn.py under test here and computes in this process.
"""

import contextlib
import importlib.util
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
TEST_DATA = REPO / "test_data"
DEFAULT_RNN = REPO / "rnn.py"
_UNDER_TEST = {"path": DEFAULT_RNN, "module": None, "results": None, "cases": None}


def set_rnn_path(path):
    """Choose the rnn.py the component tests import (before the first test runs)."""
    _UNDER_TEST["path"] = Path(path).resolve()
    _UNDER_TEST["module"] = None


def rnn_path():
    return _UNDER_TEST["path"]


def student():
    """The rnn.py under test, imported from its path once, as the module ``rnn_under_test``."""
    if _UNDER_TEST["module"] is None:
        path = _UNDER_TEST["path"]
        spec = importlib.util.spec_from_file_location("rnn_under_test", path)
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(path.parent))  # its own imports, as when it runs as a script
        try:
            spec.loader.exec_module(module)
        finally:
            sys.path.remove(str(path.parent))
        _UNDER_TEST["module"] = module
    return _UNDER_TEST["module"]


def stored_case(name):
    """A stored case: a dict of plain tensors, numbers and lists, read with torch.load's weights_only."""
    return torch.load(TEST_DATA / f"{name}.pt", weights_only=True)


def use_cases(cases):
    """Check against these cases ({name: case}, e.g. fresh ones) instead of test_data/ (None: the stored)."""
    _UNDER_TEST["cases"] = cases


def case(name):
    """The case the checks run on: the stored one, or the one ``use_cases`` gave."""
    cases = _UNDER_TEST["cases"]
    return cases[name] if cases is not None else stored_case(name)


def use_results(results):
    """Compare what a child computed ({test id: {"ok", "value" or "message"}}) rather than computing here."""
    _UNDER_TEST["results"] = results


@contextlib.contextmanager
def judging(cases, results):
    """Within it, the checks read these cases and results (grader/diagnose.py's second looks); restored after."""
    saved = _UNDER_TEST["cases"], _UNDER_TEST["results"]
    _UNDER_TEST["cases"], _UNDER_TEST["results"] = cases, results
    try:
        yield
    finally:
        _UNDER_TEST["cases"], _UNDER_TEST["results"] = saved


def revive(value):
    """A child's plain output, with each {"__object__": name} made an object whose type is that name."""
    if isinstance(value, dict):
        if set(value) == {"__object__"} and isinstance(value["__object__"], str):
            return type(value["__object__"], (), {})()
        return {k: revive(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(revive(v) for v in value)
    return value


def computed(test):
    """What ``test``'s ``compute_*`` returned on the rnn.py under test; its failure as an AssertionError."""
    results = _UNDER_TEST["results"]
    if results is None:
        return test.compute_for(test._testMethodName)(type(test).inputs(test.c), student())
    outcome = results[test.id()]
    if not outcome["ok"]:
        raise AssertionError(outcome["message"])
    return revive(outcome["value"])
