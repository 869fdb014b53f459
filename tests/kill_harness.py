"""The kill-and-resume test's launcher: runs rnn.main in forked children, some of which SIGKILL
themselves at a chosen moment.

    python3 tests/kill_harness.py JOBS.json   # prints one JSON result a job, in order

Each job is {"argv": [...], "log": path, "kill": null or {"at": WHEN, "n": N}}, WHEN being
  batch       during the forward pass of training batch N (0-based): between two saves
  after_save  right after the N-th rename of a model.pt into place (saves and the final write)
  in_save     in the N-th write of model.pt: its temporary file cut to half, not renamed
The kill is a real SIGKILL: the process gets no chance to clean up. The first job, which may
not be killed, runs in this process; the others in children forked from it afterwards, so
each costs its own work only, not an interpreter's start-up and first imports. One thread
(set before any computation) keeps the forks clear of a started thread pool.
"""

import json
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

import rnn  # noqa: E402

torch.set_num_threads(1)


def kill_self():
    os.kill(os.getpid(), signal.SIGKILL)


def arm(at, n):
    if at == "batch":
        original, calls = rnn.next_token_loss, [0]

        def next_token_loss(lm, sequence, loss_fn):
            if lm.training:  # validation is in eval mode
                if calls[0] == n:
                    kill_self()
                calls[0] += 1
            return original(lm, sequence, loss_fn)
        rnn.next_token_loss = next_token_loss
        return
    original, renames = os.replace, [0]

    def replace(src, dst):
        if Path(dst).name == "model.pt":
            renames[0] += 1
            if renames[0] == n:
                if at == "in_save":
                    with open(src, "r+b") as f:
                        f.truncate(os.path.getsize(src) // 2)
                    kill_self()
                original(src, dst)
                kill_self()
        return original(src, dst)
    os.replace = replace


def run_here(job):
    import contextlib
    with open(job["log"], "w", encoding="utf-8") as log, contextlib.redirect_stdout(log), \
            contextlib.redirect_stderr(log):
        try:
            rnn.main(job["argv"])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    return {"signal": None, "code": code, "log": Path(job["log"]).read_text(encoding="utf-8")}


def run(job):
    pid = os.fork()
    if pid == 0:
        try:
            fd = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            if job.get("kill"):
                arm(job["kill"]["at"], job["kill"]["n"])
            rnn.main(job["argv"])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
            if isinstance(e.code, str):
                print(e.code, file=sys.stderr)
        except BaseException as e:  # noqa: BLE001  (reported, not raised, in a child)
            print(f"{type(e).__name__}: {e}", file=sys.stderr)
            code = 99
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return {"signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
            "code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            "log": Path(job["log"]).read_text(encoding="utf-8")}


if __name__ == "__main__":
    jobs = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    if jobs[0].get("kill"):
        sys.exit("kill_harness.py: the first job runs in this process: it cannot be killed")
    print(json.dumps([run_here(jobs[0]), *(run(job) for job in jobs[1:])]))
