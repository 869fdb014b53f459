"""Running a student's code in child processes (grader/child.py), time- and memory-limited.

``run_checks`` hands the component checks' ``compute_*`` steps to one child after another:
one child runs them in order and says on a pipe where it is; a check that runs past its time
gets its child killed, one that crashes, exits or runs out of memory ends its child, and
either way that check fails with one line saying which, and a new child runs the checks
after it. ``run_program`` runs the file as a plain ``python3 rnn.py ARGS``.

Everything a child could use against the grader stays out of its reach:
- it is given the inputs of its calls only, never an expected value, and a private copy of
  the harness (child.py, the rule's watch, the checks' ``compute_*`` steps), not the kit's
  folder; as root, it runs as the sandbox user (grader/sandbox.py);
- its time is the runner's: a child has a budget fixed when it starts, and a check its own
  limit, which nothing it sends extends; a component that ran past its limit is not run again;
- what it sends back is capped and checked: events are short JSON lines of known kinds, a
  result file is a plain file of bounded size read with ``torch.load(weights_only=True)``,
  messages are cut short and stripped of control characters, its printed output is read a
  bounded amount at a time (and the child cannot write more than ``OUTPUT_BYTES``).
The runner judges what comes back; nothing the child writes is taken as a verdict.
"""

import io
import json
import os
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from grader import sandbox as sandboxes

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TIMEOUT = 20.0  # seconds a check may take: the literal completion's slowest takes 1.5 on 2 shared cores
IMPORT_TIMEOUT = 120.0  # importing the file (torch, transformers: 2 to 3 s here) gets at least this
DEFAULT_MEMORY_GB = 8.0  # the child's address space: torch itself maps about 3.2 GB of it
MARK = "\x1egrader-check "
OUTPUT_LINES = 6  # lines of a failing check's output shown under it
OUTPUT_BYTES = 64 * 2**20  # what a child may print in all: past it, its writes fail
RESULT_BYTES = 64 * 2**20  # a result file larger than this is no result
EVENT_BYTES = 4096  # a longer line on the pipe is not an event
MESSAGE_CHARS = 600  # a child's message is cut to this
USES_KEPT = 50  # forbidden uses kept per check (each one line of the message at most)
LINE_CHARS = 300  # a printed line is cut to this
# The harness a child runs: no expected value, no reference, nothing of the grader's judgement.
# The kit's machinery (kit/, prepare_data.py) is there too, for the kit's own rnn.py, which
# imports it; it holds no answer, and a student's file, submitted alone, has no use for it.
HARNESS = ("grader/__init__.py", "grader/child.py", "grader/rules.py", "grader/components.py",
           "grader/under_test.py", "prepare_data.py")
HARNESS_GLOBS = ("test_cases/*.py", "kit/*.py")
BESIDE_PROGRAM = ("prepare_data.py",)  # what the kit's rnn.py imports, run as a program: kit/ and this
BESIDE_PROGRAM_GLOBS = ("kit/*.py",)


def clean(text, limit=MESSAGE_CHARS):
    """A child's text made safe to print: control characters replaced, cut to ``limit``."""
    text = str(text)
    if len(text) > limit:
        text = text[:limit] + "..."
    return "".join(c if c.isprintable() or c in "\n" else "?" for c in text)


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
        if -returncode == signal.SIGXFSZ:
            return f"printed more than {OUTPUT_BYTES // 2**20} MB ({name})"
        return f"crashed ({name})"
    return (f"the process exited with status {returncode} before returning a result "
            f"(os._exit, or sys.exit from a thread?)")


def read_plain_file(path, limit, owner=None):
    """The bytes of a regular file at ``path`` (never through a symlink), at most ``limit`` of them, or None.

    A child controls its folders: it may leave a symlink to a grader's file where a result
    should be, or a huge file. ``owner`` (a uid) must own it when given."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit or info.st_nlink != 1 or \
                (owner is not None and info.st_uid != owner):
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)
        return data if len(data) <= limit else None
    finally:
        os.close(fd)


class Scratch:
    """A scratch folder for ``student`` (its source, bytes, or its path): the runner's (``root``), holding the harness (``harness/``, read-only for
    the child), the student's folder (``work/``, a copy of the file) and one output folder per
    child, those two the sandbox user's."""

    def __init__(self, student, box):
        # Children are forked from here; a tokenizer used in this process (the tiny reference run)
        # would print a warning at each fork unless its parallelism is set.
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        self.box = box
        self.root = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-"))
        os.chmod(self.root, 0o711)  # the sandbox user may pass through, not list or write
        self.harness = self.root / "harness"
        for rel in HARNESS + tuple(str(p.relative_to(REPO)) for g in HARNESS_GLOBS for p in sorted(REPO.glob(g))):
            target = self.harness / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(REPO / rel, target)
        for path in [self.harness, *self.harness.rglob("*")]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        self.work = self.root / "work"
        self.work.mkdir()
        self.student = self.work / "rnn.py"
        # The source as the runner read it (bytes), or a path to read it from now.
        self.student.write_bytes(student if isinstance(student, bytes) else Path(student).read_bytes())
        os.chmod(self.student, 0o644)
        box.own(self.work)
        if box.on:
            os.chown(self.student, box.uid, box.gid)

    def folder(self, name):
        """A new folder the child may write in."""
        path = self.root / name
        path.mkdir()
        self.box.own(path)
        return path

    def cleanup(self):
        self.box.kill_all()  # nothing of the child's may still write here
        shutil.rmtree(self.root, ignore_errors=True)


SCRATCH_PREFIX = "grader-"


def remove_stale_scratch():
    """The scratch folders of runners that were killed before they could remove their own
    (``grader-PID-*`` in the temporary folder, PID no longer running)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*-*"):
        pid = folder.name[len(SCRATCH_PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or not folder.is_dir() or folder.is_symlink() or folder.stat().st_uid != os.geteuid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:
            pass


def _child_env(work):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(work), "LANG": "C.UTF-8",
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1"}
    return env


def _limits(memory_gb):
    """The child's limits, set between fork and exec: what it may write, no core files, and (for a
    program; child.py sets its own after importing torch, which maps a few GB) its memory."""
    def apply():
        import resource
        resource.setrlimit(resource.RLIMIT_FSIZE, (OUTPUT_BYTES, OUTPUT_BYTES))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if memory_gb is not None:
            memory = int(memory_gb * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    return apply


class _Child:
    """One child process: its events (parsed JSON lines from the pipe) and its output file."""

    def __init__(self, scratch, argv, tag, memory_gb=None, pipe=True):
        self.scratch, self.box = scratch, scratch.box
        self.output_path = scratch.root / f"output-{tag}.txt"  # the runner's file: the child has only the fd
        self.read = None
        pass_fds = ()
        if pipe:
            self.read, write = os.pipe()
            pass_fds = (write,)
            argv = [*argv, str(write)]
        with open(self.output_path, "wb") as output:
            self.proc = subprocess.Popen(argv, cwd=scratch.work, stdin=subprocess.DEVNULL, stdout=output,
                                         stderr=subprocess.STDOUT, pass_fds=pass_fds, start_new_session=True,
                                         env=_child_env(scratch.work), preexec_fn=_limits(memory_gb),
                                         **self.box.popen_options())
        if pipe:
            os.close(write)
        self.buffer = b""

    def events(self, until):
        """Yield events until the child has ended (or the pipe closes); yields None once ``until()`` (a
        deadline) has passed. A process the child left behind may hold the pipe open: once the child
        itself has ended, what is on the pipe is read and no more is waited for."""
        while True:
            wait = until() - time.monotonic()
            if wait <= 0:
                yield None
                return
            ended = self.proc.poll() is not None
            ready, _, _ = select.select([self.read], [], [], 0 if ended else min(wait, 0.5))
            if not ready:
                if ended:
                    return
                continue
            data = os.read(self.read, 65536)
            if not data:
                return
            self.buffer += data
            *lines, self.buffer = self.buffer.split(b"\n")
            if len(self.buffer) > EVENT_BYTES:  # no newline in sight: not an event
                self.buffer = b""
            for line in lines:
                if len(line) > EVENT_BYTES:
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    continue  # something else wrote to the pipe
                if isinstance(event, dict) and isinstance(event.get("event"), str):
                    yield event

    def wait(self, seconds):
        """Wait until the child ends or ``seconds`` pass; whether it ended."""
        try:
            self.proc.wait(timeout=max(seconds, 0))
            return True
        except subprocess.TimeoutExpired:
            return False

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.box.kill_all()

    def finish(self):
        """Wait for the child (a few seconds) and kill what is left of it and of the sandbox user's."""
        self.wait(5)
        self.kill()
        self.proc.wait()
        if self.read is not None:
            os.close(self.read)
        return self.proc.returncode

    def output_by_check(self):
        """{index: the last lines the student's code printed during that check} ('import' for before any)."""
        parts, key = {}, "import"
        try:
            f = open(self.output_path, "rb")
        except OSError:
            return parts
        with f:
            while True:
                raw = f.readline(64 * 1024)  # a bounded piece of one line at a time
                if not raw:
                    break
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                if line.startswith(MARK):
                    try:
                        key = int(line[len(MARK):])
                    except ValueError:
                        pass
                    continue
                kept = parts.setdefault(key, [])
                kept.append(clean(line, LINE_CHARS))
                del kept[:-OUTPUT_LINES * 4]
        return parts

    def result(self, out_dir, index):
        """The check's result file read back as plain data, or None when there is no valid one."""
        data = read_plain_file(out_dir / f"{index}.pt", RESULT_BYTES, self.box.uid)
        if data is None:
            return None
        try:
            result = torch.load(io.BytesIO(data), weights_only=True)
        except Exception:  # noqa: BLE001  (partial or not ours: no result)
            return None
        if not isinstance(result, dict) or not isinstance(result.get("ok"), bool):
            return None
        return {"ok": result["ok"], "value": result.get("value") if result["ok"] else None,
                "message": clean(result.get("message")), "uses": _uses(result.get("uses"))}


def _uses(value):
    """[(label, line)] from what a child reported, dropping anything malformed, at most USES_KEPT."""
    uses = []
    for item in value if isinstance(value, (list, tuple)) else []:
        if len(uses) >= USES_KEPT:
            break
        if isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str):
            line = item[1] if isinstance(item[1], int) and not isinstance(item[1], bool) else None
            uses.append((clean(item[0], 80), line))
    return uses


def python_for_children():
    """The interpreter the children run: this one (its venv has torch and transformers)."""
    return sys.executable


def run_checks(student, checks, inputs, timeout=DEFAULT_TIMEOUT, memory_gb=DEFAULT_MEMORY_GB, box=None,
               deadline=None):
    """Run ``checks`` on the student's file in children.

    ``checks``: [(module, class, method, case name, component, needs)], ``needs`` the
    components the check runs (its own included); ``inputs``: {case name: what its calls
    need}. Returns [outcome] in the same order, each {"ok": bool, "value" or "message",
    "uses": [(label, line)], "output": [lines printed]}; "uses" are the forbidden uses seen
    while it ran, those made when the file was imported included. A check whose component
    ran past its limit in an earlier check, or that is still to start at ``deadline`` (a
    ``time.monotonic()``), fails without running.
    """
    box = box or sandboxes.Sandbox()
    scratch = Scratch(student, box)
    outcomes = [None] * len(checks)
    hung = {}  # component -> the check (label) that ran past the limit
    try:
        tag = 0
        while True:
            pending = _runnable(checks, outcomes, hung, deadline, timeout)
            if not pending:
                break
            tag += 1
            child = _run_child(scratch, checks, inputs, pending, tag, timeout, memory_gb, outcomes, deadline)
            if child is not None:  # the file did not import: every pending check fails with its reason
                for i in pending:
                    outcomes[i] = child
                break
            for i in pending:
                if outcomes[i] is not None and outcomes[i].get("timed_out"):
                    hung.setdefault(checks[i][4], checks[i][2])
    finally:
        scratch.cleanup()
    return outcomes


def _runnable(checks, outcomes, hung, deadline, timeout):
    """The checks still to run, after failing those that must not run (a hung component, no time left)."""
    pending = []
    for i, check in enumerate(checks):
        if outcomes[i] is not None:
            continue
        stuck = [c for c in sorted(check[5]) if c in hung]
        if stuck:
            outcomes[i] = {"ok": False, "uses": [], "output": [], "abnormal": True,
                           "message": f"not run: {stuck[0]} ran past the time limit of {timeout:g} s in an earlier "
                                      f"check ({hung[stuck[0]]}), and this check runs it"}
        elif deadline is not None and time.monotonic() >= deadline:
            outcomes[i] = {"ok": False, "uses": [], "output": [], "abnormal": True,
                           "message": "not run: the grader's overall time limit ran out"}
        else:
            pending.append(i)
    return pending


def _run_child(scratch, checks, inputs, pending, tag, timeout, memory_gb, outcomes, deadline):
    """One child for the ``pending`` checks, filling ``outcomes`` as results come; returns the
    outcome every pending check gets when the file could not be imported, else None."""
    out_dir = scratch.folder(f"out-{tag}")
    request = {"student": str(scratch.student), "harness": str(scratch.harness), "out": str(out_dir),
               "checks": [list(checks[i][:4]) for i in pending], "indices": pending,
               "inputs": {checks[i][3]: inputs[checks[i][3]] for i in pending}, "memory_gb": memory_gb}
    request_path = scratch.root / f"request-{tag}.pt"
    torch.save(request, request_path)
    os.chmod(request_path, 0o644)
    child = _Child(scratch, [python_for_children(), "-I", "-u", str(scratch.harness / "grader" / "child.py"),
                             str(request_path)], tag)
    start = time.monotonic()
    # A fixed budget: the import, then each check its limit; events move no deadline past it.
    budget = start + max(IMPORT_TIMEOUT, timeout) + timeout * len(pending)
    if deadline is not None:
        budget = min(budget, max(deadline, start + timeout))
    limit = [min(budget, start + max(IMPORT_TIMEOUT, timeout))]
    order = list(pending)  # the order the child must start them in
    current, imported, import_uses, stop = None, False, [], None
    for event in child.events(lambda: limit[0]):
        if event is None:  # past the time limit
            child.kill()
            stop = "timeout"
            break
        kind = event.get("event")
        if kind == "import_failed" and not imported:
            stop = ("import", clean(event.get("message", "")))
            import_uses = _uses(event.get("uses"))
            break
        if kind == "imported" and not imported:
            imported, import_uses = True, _uses(event.get("uses"))
            limit[0] = min(budget, time.monotonic() + timeout)
        elif kind == "start" and imported and current is None and order and event.get("index") == order[0]:
            current = order.pop(0)
            limit[0] = min(budget, time.monotonic() + timeout)
        elif kind == "done" and current is not None and event.get("index") == current:
            result = child.result(out_dir, current)
            if result is not None:
                outcomes[current] = {**result, "uses": import_uses + result["uses"]}
            current = None
            limit[0] = min(budget, time.monotonic() + timeout)
    returncode = child.finish()
    output = child.output_by_check()
    for i in pending:
        if outcomes[i] is not None:
            outcomes[i]["output"] = output.get(i, [])
    name = "rnn.py"
    if isinstance(stop, tuple):
        return {"ok": False, "message": f"cannot import {name}: {stop[1]}", "uses": import_uses,
                "output": output.get("import", []), "import": True}
    if not imported:
        why = (f"ran past the time limit of {max(IMPORT_TIMEOUT, timeout):g} s (a loop at the top level?)"
               if stop == "timeout" else ended_because(returncode, memory_gb))
        return {"ok": False, "message": f"importing {name} {why}" if stop == "timeout" else f"importing {name}: {why}",
                "uses": import_uses, "output": output.get("import", []), "import": True}
    culprit = current if current is not None else next((i for i in order if outcomes[i] is None), None)
    if culprit is None:
        return None
    if stop == "timeout":
        outcomes[culprit] = {"ok": False, "uses": import_uses, "output": output.get(culprit, []), "abnormal": True,
                             "timed_out": True, "message": f"ran past the time limit of {timeout:g} s and was "
                                                           f"stopped (an infinite loop, or far too slow?)"}
    else:
        outcomes[culprit] = {"ok": False, "message": ended_because(returncode, memory_gb), "uses": import_uses,
                             "output": output.get(culprit, []), "abnormal": True}
    return None


def run_program(student, argv, files, timeout, memory_gb=DEFAULT_MEMORY_GB, box=None):
    """Run the student's file as a plain ``python3 rnn.py ARGV`` (no grader module in its process) in a
    scratch folder holding ``files`` ({relative path: source path}, folders copied whole). Returns
    {"ok", "message", "uses", "output", "files": {relative path: text or None}} with each output
    file named in ``argv`` after a flag ending in ``_out``, read back as a plain file."""
    box = box or sandboxes.Sandbox()
    scratch = Scratch(student, box)
    try:
        beside = {rel: REPO / rel for rel in BESIDE_PROGRAM}
        beside.update({str(p.relative_to(REPO)): p for g in BESIDE_PROGRAM_GLOBS for p in sorted(REPO.glob(g))})
        for rel, source in {**beside, **files}.items():
            target = scratch.work / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if Path(source).is_dir():
                shutil.copytree(source, target)
            else:
                shutil.copyfile(source, target)
        for path in [*scratch.work.rglob("*")]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
            if box.on:
                os.chown(path, box.uid, box.gid)
        child = _Child(scratch, [python_for_children(), "-E", "-s", "-u", str(scratch.student), *map(str, argv)],
                       "program", memory_gb, pipe=False)
        ended = child.wait(timeout)
        if not ended:
            child.kill()
        returncode = child.finish()
        output = [line for lines in child.output_by_check().values() for line in lines]
        outs = {}
        for flag, value in zip(argv, argv[1:]):
            if str(flag).endswith("_out"):
                data = read_plain_file(scratch.work / str(value), RESULT_BYTES, box.uid)
                outs[str(value)] = None if data is None else data.decode("utf-8", errors="replace")
        if not ended:
            return {"ok": False, "message": f"ran past the time limit of {timeout:g} s and was stopped",
                    "uses": [], "output": output, "files": outs}
        if returncode != 0:
            last = next((line for line in reversed(output) if line.strip()), "")
            why = ended_because(returncode, memory_gb) if returncode < 0 else f"exited with status {returncode}"
            return {"ok": False, "message": why + (f": {clean(last, 200)}" if last else ""), "uses": [],
                    "output": output, "files": outs}
        return {"ok": True, "message": None, "uses": [], "output": output, "files": outs}
    finally:
        scratch.cleanup()
