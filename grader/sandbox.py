"""Who runs a student's code: an unprivileged user of its own when the runner is root.

Gradescope runs the grader as root. Then every child runs as ``USER`` (``autograder/setup.sh``
creates it; the runner creates it too when it is missing), in a scratch folder that user
owns, with no access to the grader's files (``run_autograder`` makes the unzipped source and
the results folder root's alone), and after each child every process of that user is killed,
so that nothing it started outlives its check. Run as an ordinary user (a student's laptop),
the children run as that user, and the report's header says that the sandbox user is off.
"""

import fcntl
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

USER = "rnn-grader"  # the sandbox user: owns nothing but the scratch folders it is given
# Runners at the same time (the kit's tests grade two files at once) each take a user of their
# own, USER, USER-1, ..., held by a lock for the runner's life: killing every process of its user
# after a child must not kill another runner's child.
POOL = 8
LOCKS = Path("/run/lock") if Path("/run/lock").is_dir() else Path(tempfile.gettempdir())


class Sandbox:
    """The sandbox user (``uid``, ``gid``), or none (``uid`` None) when the runner is not root."""

    def __init__(self, uid=None, gid=None, name=None, off_because="the runner is not root", lock=None):
        self.uid, self.gid, self.name, self.off_because = uid, gid, name, off_because
        self.lock = lock  # held while this object lives: the user is this runner's

    def __del__(self):
        if self.lock is not None:
            self.lock.close()  # lets the user go to the next runner

    @property
    def on(self):
        return self.uid is not None

    def header(self):
        """The report's line about it."""
        if self.on:
            return f"student code runs as the sandbox user {self.name} (uid {self.uid}), with no access to the grader"
        user = pwd.getpwuid(os.geteuid()).pw_name
        return (f"the sandbox user is off ({self.off_because}): student code runs as {user}, "
                f"and can read what {user} can")

    def popen_options(self):
        """Popen's keywords that start a child as the sandbox user."""
        return {"user": self.uid, "group": self.gid, "extra_groups": []} if self.on else {}

    def own(self, path, mode=0o700):
        """Give ``path`` (a folder the runner made) to the sandbox user, with ``mode``."""
        os.chmod(path, mode)
        if self.on:
            os.chown(path, self.uid, self.gid)

    def kill_all(self):
        """Kill every process of the sandbox user (a detached one too): as that user, kill(-1)."""
        if not self.on:
            return
        pid = os.fork()
        if pid == 0:  # pragma: no cover  (the forked killer)
            try:
                os.setgroups([])
                os.setgid(self.gid)
                os.setuid(self.uid)
                for _ in range(100):  # again, until none is left (one may fork as the first dies)
                    try:
                        os.kill(-1, signal.SIGKILL)  # all of this user's processes but this one
                    except ProcessLookupError:
                        break
                    time.sleep(0.005)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)


def current():
    """The Sandbox for this runner: a sandbox user of its own when root (created if missing), else none."""
    if os.geteuid() != 0:
        return Sandbox()
    for i in range(POOL):
        name = USER if i == 0 else f"{USER}-{i}"
        lock = open(LOCKS / f"{name}.lock", "a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # another runner's
            lock.close()
            continue
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            create_user(name)
            entry = pwd.getpwnam(name)
        if entry.pw_uid == 0:
            raise RuntimeError(f"the sandbox user {name} has uid 0")
        return Sandbox(entry.pw_uid, entry.pw_gid, name, lock=lock)
    raise RuntimeError(f"all {POOL} sandbox users are taken by other runners")


def create_user(name=USER):
    """A system user with no home, no shell and no password, for the children (as root)."""
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    subprocess.run([useradd, "--system", "--no-create-home", "--home-dir", "/nonexistent",
                    "--shell", "/usr/sbin/nologin", "--user-group", name],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def can_run(sandbox, python):
    """Whether the sandbox user can start ``python`` (its interpreter and standard library readable)."""
    if not sandbox.on:
        return True
    try:
        return subprocess.run([python, "-I", "-c", "import json"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, cwd="/", timeout=60, **sandbox.popen_options()).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
