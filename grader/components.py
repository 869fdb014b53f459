"""The one registry of what is graded: each component of an rnn.py, the test module that holds
its checks, what those checks run of the other components, and its default points.

Everything else reads it: test_runner.py (which modules to load, which failure explains which,
where a forbidden name written in the file counts), gradescope.py (the default points),
make_test_data.py (which cases to make), the kit's tests, and autograder/points.json, the
staff's editable copy of the points, points here for its defaults.
"""

from typing import NamedTuple, Optional, Tuple


class Component(NamedTuple):
    """One graded component."""

    name: str  # as the runner prints it and autograder/points.json keys it
    module: Optional[str]  # test_cases/<module>.py holds its checks; None: the file run as a program
    runs: Tuple[str, ...]  # the components its checks run: a failure there may be the only reason it fails
    definitions: Tuple[str, ...]  # rnn.py's top-level names whose forbidden names, written there, count here
    points: float  # its default points (100 in all), split evenly among its checks

    @property
    def case(self):
        """Its stored case, test_data/<case>.pt, which make_test_data.py's case_<case>() makes."""
        return self.module[len("test_"):] if self.module else None


_MODEL = ("RNNCell", "RNN", "SelfAttention", "RNNLanguageModel")
COMPONENTS = (
    Component("RNNCell", "test_rnn_cell", (), ("RNNCell",), 5),
    Component("RNN", "test_rnn", ("RNNCell",), ("RNN",), 10),
    Component("SelfAttention", "test_self_attention", (), ("SelfAttention",), 15),
    Component("RNNLanguageModel", "test_language_model", _MODEL[:3], ("RNNLanguageModel",), 15),
    # validate, train and generate run on the grader's stand-ins (test_cases/stand_ins.py), not the
    # student's RNN and attention: each measures itself (generate uses the model's forward and select_token).
    Component("validate", "test_validate", (), ("validate",), 10),
    Component("train", "test_train", ("validate",), ("train",), 20),
    Component("generate", "test_generate", ("RNNLanguageModel",), ("RNNLanguageModel",), 10),
    Component("tiny command", None, _MODEL + ("validate", "train"), ("main",), 15),
)

CHECKED = tuple(c for c in COMPONENTS if c.module is not None)  # those with checks in test_cases/
PROGRAM = next(c for c in COMPONENTS if c.module is None)  # the handout's tiny command (--program)
BY_NAME = {c.name: c for c in COMPONENTS}
BY_MODULE = {c.module: c for c in CHECKED}
DEFAULT_POINTS = {c.name: c.points for c in COMPONENTS}
# rnn.py's top-level names some component runs; a forbidden name written anywhere else counts everywhere.
DEFINITIONS = frozenset(d for c in COMPONENTS for d in c.definitions)


def of_test(test):
    """The Component a check of test_cases/ belongs to, by the module that defines its class."""
    return BY_MODULE[type(test).__module__.rsplit(".", 1)[-1]]
