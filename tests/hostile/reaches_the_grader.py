"""Hostile: when its RNNCell is built, tries what a child must not be able to do to the grader (@SOURCE@ is the
grader's source folder, @RESULTS@ its results file, written in by the test): read the reference
rnn.py and the answers, edit the grader's files and its Python's site-packages, forge
results.json, kill its parent (the runner), and leave a detached process behind to write later
(@MARKER@). It prints what each attempt did, and then behaves as the literal completion."""
import os
import signal
import sys
import time
from pathlib import Path

SOURCE, RESULTS, MARKER = Path("@SOURCE@"), Path("@RESULTS@"), Path("@MARKER@")


def attempt(what, action):
    try:
        action()
        print(f"ATTEMPT {what}: done", flush=True)
    except Exception as e:
        print(f"ATTEMPT {what}: {type(e).__name__}", flush=True)


def append(path):
    with open(path, "a") as f:
        f.write("\n")


def site_packages():
    import sysconfig
    return Path(sysconfig.get_paths()["purelib"]) / "sitecustomize.py"


def attack():
    attempt("read reference", lambda: (SOURCE / "rnn.py").read_text())
    attempt("read answers", lambda: (SOURCE / "test_data" / "rnn_cell.pt").read_bytes())
    attempt("edit reference", lambda: append(SOURCE / "data" / "tiny_reference.json"))
    attempt("edit runner", lambda: append(SOURCE / "test_runner.py"))
    attempt("plant sitecustomize", lambda: site_packages().write_text("print('planted')\n"))
    attempt("forge results", lambda: RESULTS.write_text('{"score": 100, "tests": []}'))
    attempt("kill parent", lambda: os.kill(os.getppid(), signal.SIGKILL))
    if os.fork() == 0:  # a detached process, to write after the grading
        os.setsid()
        if os.fork() == 0:
            time.sleep(3)
            MARKER.write_text("outlived the grading\n")
        os._exit(0)
    time.sleep(0.2)


exec(compile(Path("@LITERAL@").read_text(), "literal.py", "exec"))
_Cell = RNNCell  # noqa: F821  (the literal's)


class RNNCell(_Cell):  # the literal's, attacking first: what it prints belongs to the check
    def __init__(self, *args):
        attack()
        super().__init__(*args)
