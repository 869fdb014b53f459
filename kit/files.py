"""Paths, the kit's one error type, and writes that never leave a half-written file."""

import glob
import hashlib
import os
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent  # the kit's folder: rnn.py, data/, my_tokenizer/


class InputError(Exception):
    """Bad user input: reported as one line naming the file or flag, never a traceback."""


def kit_path(path):
    """A relative path that is not here but is in the kit's folder is the kit's (data/..., my_tokenizer)."""
    path = Path(path)
    if not path.is_absolute() and not path.exists() and (REPO / path).exists():
        return REPO / path
    return path


def shown(path):
    """A path as the messages show it: relative to the current folder when it is inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def file_sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def atomic_write_all(writes):
    """Write every (path, write) pair: ``write(tmp)`` fills a temporary file beside ``path``;
    only when all have succeeded are they renamed into place, so a failure leaves no output."""
    temps = []
    try:
        for path, write in writes:
            path = Path(path)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            os.close(fd)
            temps.append((tmp, path))
            write(tmp)
            os.chmod(tmp, 0o644)
        for tmp, path in temps:
            os.replace(tmp, path)
    finally:
        for tmp, _ in temps:
            if os.path.exists(tmp):
                os.unlink(tmp)


def atomic_write(path, write):
    """Call ``write(tmp_path)``, then rename the temporary file to ``path``: never half-written."""
    atomic_write_all([(path, write)])


def text_writer(text):
    """A ``write`` for ``atomic_write``/``atomic_write_all`` that writes ``text`` as utf-8."""
    return lambda tmp: Path(tmp).write_text(text, encoding="utf-8")


def atomic_write_text(path, text):
    """Write ``text`` as utf-8 to ``path``, atomically."""
    atomic_write(path, text_writer(text))


def remove_stale_temporaries(paths):
    """The temporary files a killed run's atomic writes left beside its outputs."""
    for path in paths:
        path = Path(path)
        for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
            tmp.unlink(missing_ok=True)


def check_writable(path, flag):
    """Fail before training, not after it, when an output path cannot be written."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise InputError(f"{flag} {path}: is a directory")
    if not parent.is_dir():
        raise InputError(f"{flag} {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise InputError(f"{flag} {path}: not writable")
