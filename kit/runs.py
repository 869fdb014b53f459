"""A training run's files: where its outputs go, what a resume must repeat, its saves and its finish.

``Run`` owns one command's run from rnn.py's ``train_main``:

    run = Run(args, parser, output_texts)  # outputs planned, named ones checked writable
    done = run.open()                      # run folder made and guarded, a save to resume found and
                                           # checked; a finished run's (train, valid, seconds), else None
    with run.training(lm, optimizer) as hook:   # a resumed model and optimizer restored
        train(..., hook=hook)              # progress, each point's log line and save
        seconds = run.finish(train_losses, valid_losses)   # every output at once, the checkpoint last

A run is finished when its checkpoint says so (``finished``): the final write puts the
loss and metrics files in place first and the checkpoint marked finished last.
experiments.py asks the same question of its run folders.
"""

import contextlib
import re
import time
from pathlib import Path

from kit.checkpoint import checkpoint_dict, read_checkpoint
from kit.data import DEFAULT_TOKENIZER, default_data_missing, default_paths
from kit.files import (REPO, InputError, atomic_write, atomic_write_all, check_writable, file_sha256, kit_path,
                       remove_stale_temporaries, shown, text_writer)

RUNS = Path("runs")  # run folders, in the current folder, for a command without output flags
TEXT_OUTPUTS = (("metrics_out", "metrics.txt"), ("train_losses_out", "train_losses.txt"),
                ("val_losses_out", "val_losses.txt"))
# What a resumed command must repeat, in the order a difference is reported.
RESUME_KEYS = ("embed_dim", "hidden_dim", "dk", "dv", "activation", "num_sequences", "batch_size", "train_data",
               "val_data", "tokenizer", "seed", "lr", "grad_clip", "val_batches")
FILE_KEYS = {"train_data": "", "val_data": "", "tokenizer": "tokenizer.json"}
LOOP_KEYS = ("next_batch", "running", "train_losses", "valid_losses", "rng")


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during training; ``saved`` says where the last save is, or is None."""

    def __init__(self, saved=None):
        super().__init__(saved)
        self.saved = saved


def run_name(settings, seed):
    """The run folder's name for these sizes, batch, sequences and seed (experiments.py's too)."""
    s = settings
    return (f"e{s['embed_dim']}_h{s['hidden_dim']}_k{s['dk']}_v{s['dv']}_b{s['batch_size']}"
            f"_n{s['num_sequences']}_s{seed}")


def point_sequences(num_sequences, batch_size, num_points):
    """Sequences seen at each point ``train`` records: batch idx's point follows (idx + 1) batches."""
    val_index = max(1, int(num_sequences * 0.1) // batch_size)
    return [(i * val_index + 1) * batch_size for i in range(num_points)]


def rng_states():
    """The torch RNG states: the CPU generator's, and each GPU's when CUDA is in use (uint8 tensors)."""
    import torch
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    return {"cpu": torch.get_rng_state(), "cuda": list(cuda)}


def set_rng_states(states):
    import torch
    torch.set_rng_state(states["cpu"])
    if states["cuda"] and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


def loop_state(next_batch, running, train_losses, valid_losses):
    """What ``train`` needs to continue after a point: plain values, so it loads with weights_only."""
    return {"next_batch": next_batch, "running": running, "train_losses": list(train_losses),
            "valid_losses": list(valid_losses), "rng": rng_states()}


def saved_run(path):
    """The checkpoint at ``path`` if there is one, else None; an InputError if it holds no training state."""
    if not Path(path).exists():
        return None
    checkpoint = read_checkpoint(path)
    if not isinstance(checkpoint.get("training"), dict):
        raise InputError(f"--checkpoint {path}: holds a model but no training state to resume (written by "
                         "rnn.py before --resume existed, or by checkpoint_dict)")
    return checkpoint


def finished(checkpoint):
    """Whether a run's checkpoint (a path, or a dict ``saved_run`` read) is of a run that finished."""
    if not isinstance(checkpoint, dict):
        try:
            checkpoint = saved_run(checkpoint)
        except InputError:
            return False
    return checkpoint is not None and bool(checkpoint["training"]["finished"])


def saved_position(checkpoint):
    t = checkpoint["training"]
    return f"saved after batch {t['next_batch'] - 1:,} of {t['num_batches']:,}"


def run_identity(args):
    """The settings that make a run's numbers, with each file by its sha256: a resume must match them."""
    return {key: file_sha256(kit_path(getattr(args, key)) / FILE_KEYS[key]) if key in FILE_KEYS else getattr(args, key)
            for key in RESUME_KEYS}


def check_same_run(saved, identity, args, where):
    """An InputError naming the first setting in which this command differs from the saved run."""
    recorded, saved_args = saved["training"].get("identity", {}), saved.get("args", {})
    for key in RESUME_KEYS:
        if recorded.get(key) == identity[key]:
            continue
        if key in FILE_KEYS:
            raise InputError(f"--resume: --{key} {shown(getattr(args, key))} is not the file {where} was trained "
                             f"with (its --{key} was {saved_args.get(key)}; the contents differ)")
        raise InputError(f"--resume: {where} was saved by a run with --{key} {saved_args.get(key)}, this command has "
                         f"--{key} {identity[key]}; give its settings, or leave out --resume to start afresh")


def run_folder(args, parser):
    """runs/NAME for a command without output flags: ``run_name``, then whatever else is not the default."""
    extras = [f"{key}{getattr(args, key):g}" for key in ("lr", "grad_clip", "val_batches")
              if getattr(args, key) != parser.get_default(key)]
    if args.activation != parser.get_default("activation"):
        extras.insert(0, args.activation)
    for path, default in zip((args.train_data, args.val_data), default_paths()):
        if Path(path).resolve() != default.resolve():
            extras.append(Path(path).stem)
    if kit_path(args.tokenizer).resolve() != (REPO / DEFAULT_TOKENIZER).resolve():
        extras.append(Path(args.tokenizer).name)
    return RUNS / "_".join([run_name(vars(args), args.seed), *(re.sub(r"[^\w.-]+", "-", x) for x in extras)])


class Hook:
    """What ``train`` reports to: the progress bar, each point's log line, and the save after it.

    ``resume()`` gives the loop's starting state, a saved run's when resuming (its RNG state
    restored then, after the loader's iterator was made, since making it draws from the RNG).
    """

    def __init__(self, bar, save, resume_state, num_batches, batch_size, tag):
        self.bar, self.save, self.state = bar, save, resume_state
        self.num_batches, self.batch_size, self.tag = num_batches, batch_size, tag
        self.first_batch = resume_state["next_batch"] if resume_state else 0
        self.start = time.perf_counter()

    def log(self, line):
        self.bar.write(line)

    def resume(self):
        """(first batch, running loss sum, train points, valid points) to start the loop from."""
        if self.state is None:
            return 0, 0.0, [], []
        set_rng_states(self.state["rng"])
        s = self.state
        return s["next_batch"], s["running"], list(s["train_losses"]), list(s["valid_losses"])

    def batch(self, rows):
        self.bar.update(rows)

    def point(self, idx, running, train_losses, valid_losses):
        """Save, then log: a point's line on the screen means its save is on disk."""
        if self.save is not None:
            self.save(loop_state(idx + 1, running, train_losses, valid_losses))
        self.log(f"batch {idx:,}/{self.num_batches:,} ({(idx + 1) * self.batch_size:,} sequences): "
                 f"train loss {train_losses[-1]:.4f}, valid loss {valid_losses[-1]:.4f} ({self.tag}), "
                 f"{time.perf_counter() - self.start:.1f} s")


class Run:
    """One training command's run; see the module's docstring for the order of calls.

    ``args`` are rnn.py's parsed flags (their paths are filled in here), ``parser`` its parser
    (for the defaults a run folder's name leaves out), ``texts(train_losses, valid_losses)``
    the loss and metrics files' {dest: text}.
    """

    def __init__(self, args, parser, texts):
        self.args, self.parser, self.texts = args, parser, texts
        args.tokenizer = args.tokenizer or DEFAULT_TOKENIZER
        self.default_data = args.train_data is None and args.val_data is None
        defaults = default_paths()
        args.train_data = str(kit_path(args.train_data) if args.train_data is not None else defaults[0])
        args.val_data = str(kit_path(args.val_data) if args.val_data is not None else defaults[1])
        self.folder = None
        if all(getattr(args, dest) is None for dest, _ in TEXT_OUTPUTS):
            self.folder = run_folder(args, parser)
            for dest, name in TEXT_OUTPUTS:
                setattr(args, dest, str(self.folder / name))
            if args.checkpoint is None:
                args.checkpoint = str(self.folder / "model.pt")
        else:
            for dest, name in TEXT_OUTPUTS:
                if getattr(args, dest) is None:
                    setattr(args, dest, name)
        self.outputs = {f"--{dest}": getattr(args, dest) for dest, _ in TEXT_OUTPUTS}
        self.checkpoint = args.checkpoint
        if self.checkpoint is not None:
            self.outputs["--checkpoint"] = self.checkpoint
        if self.folder is None:
            self._check_writable()
        self.saved = None
        self.num_batches = args.num_sequences // args.batch_size

    def _check_writable(self):
        for flag, path in self.outputs.items():
            check_writable(path, flag)

    def needs_default_data(self):
        """The data flags at their defaults and the prepared files not built yet (a fresh clone)."""
        return self.default_data and default_data_missing()

    def open(self):
        """Make and guard the run folder, find the save to resume; a finished run's results, else None."""
        args = self.args
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._check_writable()
            self._guard_folder()
            print(f"outputs go to {shown(self.folder)}/ (no output flags given)")
        self.identity = run_identity(args) if self.checkpoint is not None else None
        if args.resume:
            self.saved = saved_run(self.checkpoint)
            if self.saved is None:
                print(f"--resume: no save at {shown(self.checkpoint)} yet; starting afresh")
            else:
                check_same_run(self.saved, self.identity, args, shown(self.checkpoint))
        if self.checkpoint is not None:
            remove_stale_temporaries(self.outputs.values())
        if self.saved is not None and finished(self.saved):
            t = self.saved["training"]
            atomic_write_all(self._text_writes(t["train_losses"], t["valid_losses"]))
            print(f"--resume: the run in {shown(self.checkpoint)} finished earlier ({len(t['train_losses'])} points, "
                  f"{t['seconds']:.1f} s); nothing trained, its loss and metrics files written again from it")
            return t["train_losses"], t["valid_losses"], t["seconds"]
        return None

    def _guard_folder(self):
        """A run folder's finished run is not overwritten, nor its unfinished one started over, unless asked."""
        if self.args.resume or self.args.force:
            return
        saved = saved_run(self.checkpoint) if Path(self.checkpoint).exists() else None
        done = finished(saved) if saved is not None else (self.folder / "metrics.txt").exists()
        if done:
            raise InputError(f"{shown(self.folder)}: holds a finished run of these settings; pass --force to train it "
                             "again and overwrite it, or name the outputs (--metrics_out, ...)")
        if saved is not None:
            raise InputError(f"{shown(self.folder)}: holds an unfinished run of these settings "
                             f"({saved_position(saved)}); add --resume to continue it, or --force to start it over")

    def _text_writes(self, train_losses, valid_losses):
        texts = self.texts(train_losses, valid_losses)
        return [(self.outputs[f"--{dest}"], text_writer(texts[dest])) for dest in
                ("train_losses_out", "val_losses_out", "metrics_out")]

    def _record(self, state, finished_):
        record = checkpoint_dict(self.lm, self.args.tokenizer, vars(self.args))
        record["training"] = {**state, "finished": finished_, "num_batches": self.num_batches,
                              "seconds": self.seconds(), "optimizer": self.optimizer.state_dict(),
                              "identity": self.identity}
        return record

    def seconds(self):
        """Seconds of training, a resumed run's earlier ones included."""
        return self.seconds_before + time.perf_counter() - self.start

    def _save(self, state):
        record = self._record(state, False)
        atomic_write(self.checkpoint, lambda tmp: _torch_save(record, tmp))

    @contextlib.contextmanager
    def training(self, lm, optimizer):
        """Restore a resumed model and optimizer; yield ``train``'s Hook; Ctrl-C says where the last save is."""
        from tqdm import tqdm
        self.lm, self.optimizer = lm, optimizer
        resume_state, self.seconds_before = None, 0.0
        if self.saved is not None:
            t = self.saved["training"]
            lm.load_state_dict(self.saved["state_dict"])
            optimizer.load_state_dict(t["optimizer"])
            resume_state = {key: t[key] for key in LOOP_KEYS}
            self.seconds_before = t["seconds"]
            print(f"--resume: continuing {shown(self.checkpoint)}, {saved_position(self.saved)} "
                  f"({len(resume_state['train_losses'])} points, {self.seconds_before:.1f} s of training kept)")
        self.start = time.perf_counter()
        args = self.args
        tag = validation_tag(args.val_batches)
        try:
            with tqdm(total=self.num_batches * args.batch_size, initial=(resume_state or {}).get("next_batch", 0) *
                      args.batch_size, unit="seq", disable=None, dynamic_ncols=True) as bar:
                yield Hook(bar, self._save if self.checkpoint is not None else None, resume_state,
                           self.num_batches, args.batch_size, tag)
        except KeyboardInterrupt:
            raise self._interrupted() from None

    def _interrupted(self):
        try:  # the file itself says where its last save is, even one that landed as Ctrl-C came
            last = saved_run(self.checkpoint) if self.checkpoint is not None else None
        except InputError:
            last = None
        if last is None or finished(last):
            return Interrupted()
        return Interrupted(f"{shown(self.checkpoint)} holds the run, {saved_position(last)}")

    def finish(self, train_losses, valid_losses):
        """Write every output at once, the checkpoint (marked finished) last; the seconds of training."""
        writes = self._text_writes(train_losses, valid_losses)
        if self.checkpoint is not None:  # last: a finished checkpoint means every output was written
            final = self._record(loop_state(self.num_batches, 0.0, train_losses, valid_losses), True)
            writes.append((self.checkpoint, lambda tmp: _torch_save(final, tmp)))
        seconds = self.seconds()
        atomic_write_all(writes)
        return seconds

    def written(self):
        return ", ".join(shown(path) for path in self.outputs.values())


def validation_tag(num_batches):
    """Which batches ``validate(..., num_batches)`` reads, in words, for the logs."""
    return {0: "whole validation set", 1: "first batch"}.get(num_batches, f"first {num_batches} batches")


def _torch_save(obj, path):
    import torch
    torch.save(obj, path)
