"""Running a student's code in child processes (grader/child.py), time- and memory-limited.

``run_checks`` hands the component checks' ``compute_*`` steps to one child after another:
one child runs them in order and says on a pipe where it is; a check that runs past the time
limit gets its process group killed, one that crashes, exits or runs out of memory ends its
child, and either way that check fails with one line saying which and a new child runs the
checks after it. ``run_program`` runs the file as ``python3 rnn.py ARGS`` the same way. The
runner's process never imports the student's file; it reads back only plain data
(``torch.load(weights_only=True)``).
"""

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
CHILD = Path(__file__).resolve().parent / "child.py"
DEFAULT_TIMEOUT = 20.0  # seconds a check may take: the literal completion's slowest takes 1.5 on 2 shared cores
# 13 times the slowest check, yet a file that hangs in a function every check calls
# (SelfAttention.step: 13 of the 20) is still graded in under 5 minutes.
IMPORT_TIMEOUT = 120.0  # importing the file (torch, transformers: 2 to 3 s here) gets at least this
DEFAULT_MEMORY_GB = 8.0  # the child's address space: torch itself maps about 3.2 GB of it
MARK = "\x1egrader-check "
OUTPUT_LINES = 6  # lines of a failing check's output shown under it


def _signal_name(number):
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def ended_because(returncode, memory_gb):
    """One line for a child that ended before returning a result."""
    if returncode is None:
        return "the process did not end"
    if returncode < 0:
        name = _signal_name(-returncode)
        if -returncode == signal.SIGSEGV:
            return f"crashed with a segmentation fault ({name})"
        if -returncode == signal.SIGKILL:
            return f"was killed ({name}): out of memory, or killed from outside"
        return f"crashed ({name})"
    return (f"the process exited with status {returncode} before returning a result "
            f"(os._exit, or sys.exit from a thread?)")


class Scratch:
    """A scratch folder holding a copy of the student's file (and the .py files beside it)."""

    def __init__(self, student):
        self.root = Path(tempfile.mkdtemp(prefix="grader-"))
        self.work = self.root / "work"
        self.work.mkdir()
        student = Path(student).resolve()
        siblings = [p for p in student.parent.glob("*.py") if p.is_file()][:200]
        for p in siblings:
            if p != student:
                shutil.copyfile(p, self.work / p.name)
        self.student = self.work / student.name
        shutil.copyfile(student, self.student)

    def cleanup(self):
        shutil.rmtree(self.root, ignore_errors=True)


def _child_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTOGRADER", "PYTHON"))}
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("MKL_NUM_THREADS", "1")
    env["TQDM_DISABLE"] = "1"
    return env


class _Child:
    """One child process: its events (parsed JSON lines from the pipe) and its output file."""

    def __init__(self, scratch, request, tag):
        self.out_dir = scratch.root / f"out-{tag}"
        self.out_dir.mkdir()
        read, write = os.pipe()
        request = {**request, "fd": write, "out": str(self.out_dir)}
        path = scratch.root / f"request-{tag}.pt"
        torch.save(request, path)
        self.output_path = scratch.root / f"output-{tag}.txt"
        with open(self.output_path, "wb") as output:
            self.proc = subprocess.Popen([sys.executable, "-I", "-u", str(CHILD), str(path)], cwd=scratch.work,
                                         stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                         pass_fds=(write,), start_new_session=True, env=_child_env())
        os.close(write)
        self.read = read
        self.buffer = b""

    def events(self, until):
        """Yield events until the pipe closes; yields None when ``until()`` (a deadline) passes first."""
        while True:
            wait = until() - time.monotonic()
            if wait <= 0:
                yield None
                continue
            ready, _, _ = select.select([self.read], [], [], min(wait, 1.0))
            if not ready:
                continue
            data = os.read(self.read, 65536)
            if not data:
                return
            self.buffer += data
            *lines, self.buffer = self.buffer.split(b"\n")
            for line in lines:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue  # something else wrote to the pipe
                if isinstance(event, dict):
                    yield event

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def finish(self):
        """Wait for the child (a few seconds) and kill what is left of its process group."""
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.kill()
        self.proc.wait()
        os.close(self.read)
        return self.proc.returncode

    def output_by_check(self):
        """{index: the lines the student's code printed during that check} ('import' for before any)."""
        try:
            text = self.output_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return {}
        parts, key = {}, "import"
        for line in text.split("\n"):  # not splitlines(): it splits at MARK's \x1e too
            line = line.rstrip("\r")
            if line.startswith(MARK):
                try:
                    key = int(line[len(MARK):])
                except ValueError:
                    pass
                continue
            parts.setdefault(key, []).append(line)
        return parts

    def result(self, index):
        """The check's result file, or None when the child did not finish writing it."""
        try:
            result = torch.load(self.out_dir / f"{index}.pt", weights_only=True)
        except Exception:  # noqa: BLE001  (missing, partial or not ours: no result)
            return None
        return result if isinstance(result, dict) and "ok" in result else None


def _uses(value):
    """[(label, line)] from what a child reported, dropping anything malformed."""
    uses = []
    for item in value if isinstance(value, (list, tuple)) else []:
        if isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str):
            uses.append((item[0], item[1] if isinstance(item[1], int) else None))
    return uses


def run_checks(student, checks, cases, timeout=DEFAULT_TIMEOUT, memory_gb=DEFAULT_MEMORY_GB):
    """Run ``checks`` ([(module, class, method, case name)]) on the student's file in children.

    Returns [outcome] in the same order, each {"ok": bool, "value" or "message", "uses": [(label,
    line)], "output": [lines printed]}. "uses" are the forbidden uses seen while it ran, those
    made when the file was imported included.
    """
    scratch = Scratch(student)
    outcomes = [None] * len(checks)
    try:
        tag = 0
        while any(o is None for o in outcomes):
            pending = [i for i, o in enumerate(outcomes) if o is None]
            tag += 1
            child = _Child(scratch, {"student": str(scratch.student), "repo": str(REPO), "memory_gb": memory_gb,
                                     "checks": [list(checks[i]) for i in pending], "indices": pending,
                                     "cases": {checks[i][3]: cases[checks[i][3]] for i in pending}}, tag)
            deadline = [time.monotonic() + max(IMPORT_TIMEOUT, timeout)]
            current, import_uses, stop = None, [], None
            for event in child.events(lambda: deadline[0]):
                if event is None:  # past the time limit
                    child.kill()
                    stop = ("timeout", current)
                    break
                kind = event.get("event")
                if kind == "import_failed":
                    stop = ("import", str(event.get("message", "")))
                    import_uses = _uses(event.get("uses"))
                elif kind == "imported":
                    import_uses = _uses(event.get("uses"))
                    deadline[0] = time.monotonic() + timeout
                elif kind == "start" and event.get("index") in pending:
                    current = event["index"]
                    deadline[0] = time.monotonic() + timeout
                elif kind == "done" and event.get("index") in pending:
                    index = event["index"]
                    result = child.result(index)
                    if result is not None:
                        outcomes[index] = {"ok": bool(result["ok"]), "value": result.get("value"),
                                           "message": str(result.get("message")),
                                           "uses": import_uses + _uses(result.get("uses"))}
                    current = None
                    deadline[0] = time.monotonic() + timeout
            returncode = child.finish()
            output = child.output_by_check()
            for i in pending:
                if outcomes[i] is not None:
                    outcomes[i]["output"] = output.get(i, [])
            if stop is not None and stop[0] == "import":
                for i in pending:
                    outcomes[i] = {"ok": False, "message": f"cannot import {Path(student).name}: {stop[1]}",
                                   "uses": import_uses, "output": output.get("import", []), "import": True}
                break
            if stop is not None and stop[1] is None and not any(outcomes[i] is not None for i in pending):
                for i in pending:  # hung while importing
                    outcomes[i] = {"ok": False, "message": f"importing {Path(student).name} ran past the time limit "
                                   f"of {max(IMPORT_TIMEOUT, timeout):g} s (a loop at the top level?)",
                                   "uses": import_uses, "output": output.get("import", []), "import": True}
                break
            if stop is not None:
                why = (f"ran past the time limit of {timeout:g} s and was stopped (an infinite loop, "
                       f"or far too slow?)")
                culprit = stop[1]
            else:
                why = ended_because(returncode, memory_gb)
                culprit = current
            if culprit is None:  # ended between checks, or before the first: pin it on the next
                culprit = next((i for i in pending if outcomes[i] is None), None)
                if culprit is None:
                    break
                if current is None and not any(outcomes[i] is not None for i in pending):
                    for i in pending:  # ended while importing
                        outcomes[i] = {"ok": False, "message": f"importing {Path(student).name}: {why}",
                                       "uses": import_uses, "output": output.get("import", []), "import": True}
                    break
            outcomes[culprit] = {"ok": False, "message": why, "uses": import_uses,
                                 "output": output.get(culprit, []), "abnormal": True}
    finally:
        scratch.cleanup()
    return outcomes


def run_program(student, argv, files, timeout, memory_gb=DEFAULT_MEMORY_GB):
    """Run the student's file as ``python3 rnn.py ARGV`` (hooks installed) in a scratch folder holding
    ``files`` ({relative path: source path}, folders copied whole). Returns {"ok", "message", "uses",
    "output", "files": {relative path: text}} with the text of each output file named in ``argv``
    after a flag ending in ``_out``."""
    scratch = Scratch(student)
    try:
        for rel, source in files.items():
            target = scratch.work / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if Path(source).is_dir():
                shutil.copytree(source, target)
            else:
                shutil.copyfile(source, target)
        child = _Child(scratch, {"student": str(scratch.student), "repo": str(REPO), "memory_gb": memory_gb,
                                 "program": [str(a) for a in argv]}, "program")
        deadline = time.monotonic() + timeout
        timed_out = False
        for event in child.events(lambda: deadline):
            if event is None:
                child.kill()
                timed_out = True
                break
        returncode = child.finish()
        output = [line for lines in child.output_by_check().values() for line in lines]
        try:
            result = torch.load(child.out_dir / "program.pt", weights_only=True)
        except Exception:  # noqa: BLE001  (missing or partial: it did not end normally)
            result = None
        outs = {}
        for flag, value in zip(argv, argv[1:]):
            if str(flag).endswith("_out"):
                path = scratch.work / str(value)
                try:
                    outs[str(value)] = path.read_text(encoding="utf-8", errors="replace")
                except OSError:
                    outs[str(value)] = None
        if timed_out:
            return {"ok": False, "message": f"ran past the time limit of {timeout:g} s and was stopped",
                    "uses": [], "output": output, "files": outs}
        if not isinstance(result, dict):
            return {"ok": False, "message": ended_because(returncode, memory_gb), "uses": [], "output": output,
                    "files": outs}
        code, text = result.get("code"), result.get("message")
        ok = code == 0
        message = None if ok else (text or f"exited with status {code}")
        return {"ok": ok, "message": message, "uses": _uses(result.get("uses")), "output": output, "files": outs}
    finally:
        scratch.cleanup()
