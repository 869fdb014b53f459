"""The autograder's own run: the student's file as a program, ``python3 rnn.py [the handout's tiny
command]``, in a scratch folder holding a copy of my_tokenizer/ and the tiny data, time-limited,
and its three output files compared with the kit's run (data/tiny_reference.json, which holds
the points of data/tiny_*.txt) to 1e-4, the handout's "4 decimals". The command, its outputs,
the reference and the comparison are kit/tiny.py's, the ones rnn.py's own verdict uses."""

from grader import components, isolation
from kit import tiny
from kit.files import REPO

LABEL = "rnn.py as a program: the handout's tiny command, its three files against the kit's run to 1e-4"
COMPONENT = components.PROGRAM.name
DEFAULT_TIMEOUT = 300.0  # the literal completion trains in 7 to 15 s on 2 shared cores, the kit's in about 5
FILES = {"my_tokenizer": REPO / "my_tokenizer", **{path: REPO / path for path in tiny.DATA.values()}}


def run(student, timeout=DEFAULT_TIMEOUT, memory_gb=isolation.DEFAULT_MEMORY_GB):
    """{"ok", "message", "uses", "output"}: the run and its comparison (the rule is the caller's)."""
    result = isolation.run_program(student, tiny.ARGS, FILES, timeout, memory_gb)
    if result["ok"]:
        result["message"] = tiny.compare_files(result["files"], tiny.reference())
        result["ok"] = result["message"] is None
    return result
