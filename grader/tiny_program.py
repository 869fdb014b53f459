"""The autograder's own run: the student's file as a program, ``python3 rnn.py [the handout's tiny
command]``, in a scratch folder holding a copy of my_tokenizer/ and the tiny data, time-limited,
and its three output files compared with the kit's run to 1e-4, the handout's "4 decimals". The
command, its outputs and the comparison are kit/tiny.py's, the ones rnn.py's own verdict uses.

Which data, and which kit's run (``program_inputs``):

* no seed: the committed tiny data (data/tiny_*_stories.json) and data/tiny_reference.json,
  whose points are data/tiny_*.txt, the ones the handout publishes. A file that only writes
  those numbers passes this check, so Gradescope does not grade with it;
* ``--fresh SEED``: new tiny data drawn from the seed (``fresh_tiny_data``: the same stories,
  tokenizer, counts and window length, in a new order), and the kit's own rnn.py run on them
  in the runner's process (``reference_run``), before the student's file runs on them with
  the same command line. Its numbers are published nowhere, so only training makes them.

The kit's run is made in the runner's process, not in a child: it is trusted code (the kit's
rnn.py at the repository root, checked to be that file), the runner has imported it already for
the fresh component cases, and a child would cost another torch import. What it changes there
is put back: the torch thread count (1 for the run, the children's summation order, so the two
runs agree), the torch RNG, and stdout and stderr (captured, never in the runner's report).
"""

import contextlib
import io
import json
import random
import shutil
import sys
import tempfile
from pathlib import Path

from grader import components, isolation
from kit import tiny
from kit.files import REPO

LABEL = "rnn.py as a program: the handout's tiny command, its three files against the kit's run to 1e-4"
COMPONENT = components.PROGRAM.name
DEFAULT_TIMEOUT = 300.0  # the literal completion trains in 7 to 15 s on 2 shared cores, the kit's in about 5
TOKENIZER = REPO / "my_tokenizer"
FILES = {"my_tokenizer": TOKENIZER, **{path: REPO / path for path in tiny.DATA.values()}}
SEQ_LEN = 32  # prepare_data.py's --tiny_seq_len: the committed windows' length
EOS_ID = 1  # </s>, which ends every story of the kit's data


def read_windows(path):
    """The token-id windows of a tiny data file (a JSON list of lists of ids)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def stream_of(windows):
    """The token stream windows were cut from (``prepare_data.windows``: neighbours share one token),
    less the tail too short for a window that prepare_data.py dropped."""
    return [*windows[0], *(x for window in windows[1:] for x in window[1:])] if windows else []


def stories_of(stream):
    """A token stream cut after each </s>: its stories' token ids, each ending in </s>. A stream
    that does not end in </s> (the committed ones lose their last story's end, prepare_data.py's
    dropped tail) ends in a story cut short, which is given its </s> here."""
    stories, story = [], []
    for token in stream:
        story.append(token)
        if token == EOS_ID:
            stories.append(story)
            story = []
    if story:
        stories.append([*story, EOS_ID])
    return stories


def tiny_stories():
    """{"train", "valid"}: the stories of the committed tiny data (data/tiny_*_stories.json), as token ids.

    Read back from the windows themselves, the files the Gradescope zip holds (it holds neither
    the untokenized stories nor a need to tokenize): the train windows hold 39 whole stories
    and the first 139 tokens of a 40th, the valid windows 9 and 131 of a 10th."""
    return {split: stories_of(stream_of(read_windows(REPO / tiny.DATA[key])))
            for split, key in (("train", "train"), ("valid", "val"))}


def fresh_streams(seed, stories=None):
    """{"train", "valid"}: each split's token stream drawn from ``seed``; see ``fresh_tiny_data``."""
    stories = tiny_stories() if stories is None else stories
    streams = {}
    for split, ids in stories.items():
        r = random.Random(f"tiny-program/{seed}/{split}")
        order = list(range(len(ids)))
        r.shuffle(order)
        stream = [x for i in order for x in ids[i]]
        offset = r.randrange(len(stream))
        streams[split] = stream[offset:] + stream[:offset]
    return streams


def fresh_tiny_data(seed, stories=None):
    """(train_sequences, valid_sequences): tiny data drawn from ``seed``, lists of token-id lists
    of the committed tiny data's shape (201 and 47 windows of 32 tokens).

    Each split on its own (no story moves between train and valid): the stories of the
    committed tiny data (``tiny_stories``: real stories, tokenized by the kit's my_tokenizer as
    prepare_data.py --tiny tokenized them, each ending in </s>) are put in an order drawn from
    the seed and joined into one token stream; the stream is turned by an offset drawn from the
    seed (it starts at that token, and the tokens before it follow the last story's </s>, where
    a story begins); and it is cut into windows of 32 tokens, neighbours sharing one
    (``prepare_data.windows``), as the committed data were. The stream has the committed one's
    tokens and one </s> more, so the counts are the committed ones (201 and 47); the first
    train and valid windows (the command validates on valid window 0) start anywhere in their
    stream. The draws are Python's ``random.Random``, seeded with a string holding the seed
    (hashed by sha512, not by ``hash()``), so a seed gives the same data on any machine, with
    any torch; two seeds almost always give different data (40! x 6,233 train streams,
    10! x 1,459 valid ones). ``stories``: ``tiny_stories()``'s result, to draw several seeds
    with one read.
    """
    import prepare_data
    streams = fresh_streams(seed, stories)
    return tuple(prepare_data.windows(streams[split], SEQ_LEN) for split in ("train", "valid"))


@contextlib.contextmanager
def _quiet_torch():
    """One intra-op thread (the summation order the students' children use, grader/child.py), the
    torch RNG left as it was, and the kit's printing captured; all restored on the way out."""
    import torch
    threads = torch.get_num_threads()
    captured = io.StringIO()
    try:
        torch.set_num_threads(1)
        with torch.random.fork_rng(devices=[]), contextlib.redirect_stdout(captured), \
                contextlib.redirect_stderr(captured):
            yield captured
    finally:
        torch.set_num_threads(threads)


def _kit_rnn():
    """The kit's rnn.py (the repository root's), never a file of the same name elsewhere on sys.path."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import rnn
    if Path(rnn.__file__).resolve() != (REPO / "rnn.py").resolve():
        raise RuntimeError(f"'import rnn' found {rnn.__file__}, not the kit's {REPO / 'rnn.py'}")
    return rnn


def reference_run(train_path, valid_path):
    """(train_losses, val_losses): the kit's rnn.py run as the handout's tiny command (kit/tiny.py's
    sizes, rnn.py's defaults otherwise: seed 10601, lr 1e-3, clip 1.0, first-batch validation) on
    these data files, on the CPU, in this process, its output files in a temporary folder (no
    checkpoint) and its printing captured. The torch thread count is 1 during the run, as in the
    children that run students' files, and is put back after it, as is the torch RNG's state.
    A failure is the kit's, so it raises (RuntimeError, with the run's output)."""
    rnn = _kit_rnn()
    with tempfile.TemporaryDirectory(prefix="grader-tiny-reference-") as folder:
        outs = {key: str(Path(folder) / name) for key, name in tiny.OUTPUTS.items()}
        argv = ["--train_data", str(Path(train_path).resolve()), "--val_data", str(Path(valid_path).resolve()),
                "--train_losses_out", outs["train"], "--val_losses_out", outs["val"], "--metrics_out", outs["metrics"],
                *(word for key, value in tiny.SIZES.items() for word in (f"--{key}", str(value))),
                "--tokenizer", str(TOKENIZER), "--device", "cpu"]
        with _quiet_torch() as captured:
            try:
                train_losses, val_losses, _ = rnn.train_main(rnn.parse_args(argv))
            except (Exception, SystemExit) as e:  # noqa: BLE001  (parse_args exits on a bad flag)
                error = e
            else:
                error = None
        if error is not None:
            tail = captured.getvalue().strip().splitlines()[-5:]
            raise RuntimeError(f"the kit's tiny run failed: {type(error).__name__}: {error}"
                               + "".join(f"\n    {line}" for line in tail)) from error
    return list(train_losses), list(val_losses)


@contextlib.contextmanager
def program_inputs(seed):
    """``with program_inputs(seed) as (files, reference):`` what the program check runs on and compares with.

    ``files``: {relative path in the scratch folder: source path}, as ``isolation.run_program``
    takes it: my_tokenizer/ and the two tiny data files kit/tiny.py's command line names.
    ``reference``: {"train_losses", "val_losses", ...}, as ``tiny.compare_files`` takes it.
    Seed None: the committed data and data/tiny_reference.json. A seed: ``fresh_tiny_data(seed)``
    written to a temporary folder (removed on leaving) and ``reference_run``'s points on them.
    """
    if seed is None:
        yield dict(FILES), tiny.reference()
        return
    import prepare_data
    import torch
    folder = Path(tempfile.mkdtemp(prefix="grader-tiny-"))
    try:
        paths = {key: folder / rel for key, rel in tiny.DATA.items()}
        for key, sequences in zip(("train", "val"), fresh_tiny_data(seed)):
            paths[key].parent.mkdir(parents=True, exist_ok=True)
            paths[key].write_text(prepare_data.json_text(sequences), encoding="utf-8")
        train_losses, val_losses = reference_run(paths["train"], paths["val"])
        files = {"my_tokenizer": TOKENIZER, **{tiny.DATA[key]: path for key, path in paths.items()}}
        yield files, {"train_losses": train_losses, "val_losses": val_losses, "fresh_seed": seed,
                      "made_with": f"torch {torch.__version__}, in the runner's process"}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(student, timeout=DEFAULT_TIMEOUT, memory_gb=isolation.DEFAULT_MEMORY_GB, seed=None, inputs=None, box=None):
    """{"ok", "message", "uses", "output"}: the run and its comparison (the rule is the caller's).

    ``seed``: None for the committed tiny data and their published reference; else (--fresh)
    tiny data drawn from it and the kit's run on them, made here, before the student's file runs.
    ``inputs``: the ``(files, reference)`` of a ``program_inputs(seed)`` the caller has entered
    already (and leaves after this returns), so that the kit's run can be made before any of the
    student's code runs, the component checks' included; ``seed`` is then not used.
    ``box``: who runs it (grader/sandbox.py); ``student``: its source (bytes) or its path.
    """
    with contextlib.ExitStack() as stack:
        files, reference = inputs if inputs is not None else stack.enter_context(program_inputs(seed))
        result = isolation.run_program(student, tiny.ARGS, files, timeout, memory_gb, box=box)
        if result["ok"]:
            result["message"] = tiny.compare_files(result["files"], reference)
            result["ok"] = result["message"] is None
    return result
