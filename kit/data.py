"""The prepared data: reading and checking it, the tokenizer, the training loader."""

import hashlib
import json
from pathlib import Path

from kit.files import REPO, InputError, kit_path

DATA_DIR = REPO / "data"  # the prepared files, when --train_data and --val_data are left at their defaults
PREPARED = ("train_stories.json", "valid_stories.json")  # what prepare_data.py writes there
DEFAULT_TOKENIZER = "my_tokenizer"  # as flags and checkpoints name it; kit_path finds it from any folder
EOS_ID = 1  # </s>, ends every story

# (sha256 of the file, vocabulary) -> its checked sequences: a sweep of many runs in one
# process (experiments.py) parses each file once, and a changed file is parsed again.
_PARSED = {}


def read_sequences(path, *, vocab_size=None, flag=""):
    """The token-id sequences of a prepared JSON file, each a (T_i,) long tensor, checked as read.

    A JSON list of lists of integer ids, each at least 2 long, each id below ``vocab_size``
    when given; anything else is an InputError naming ``flag`` and the file.
    """
    import torch
    path = Path(path)
    where = f"{flag} {path}".strip()
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except FileNotFoundError:
        hint = "; build it with: python3 prepare_data.py" if path.name in PREPARED else ""
        raise InputError(f"{where}: no such file{hint}")
    except IsADirectoryError:
        raise InputError(f"{where}: is a directory, not a JSON file")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{where}: cannot read it ({getattr(e, 'strerror', None) or e})")
    key = (hashlib.sha256(raw).digest(), vocab_size)
    if key in _PARSED:
        return _PARSED[key]
    try:
        data = json.loads(text)
    except ValueError as e:
        raise InputError(f"{where}: not valid JSON ({e})")
    if not isinstance(data, list) or not all(isinstance(s, list) for s in data):
        raise InputError(f"{where}: expected a JSON list of sequences of token ids")
    if not data:
        raise InputError(f"{where}: the dataset is empty")
    sequences = []
    for i, seq in enumerate(data):
        if not all(type(x) is int for x in seq):
            raise InputError(f"{where}: sequence {i} is not a list of integer token ids")
        if len(seq) < 2:
            raise InputError(f"{where}: sequence {i} has {len(seq)} token(s); at least 2 are needed "
                             "to predict a next token")
        lo, hi = min(seq), max(seq)
        if lo < 0 or (vocab_size is not None and hi >= vocab_size) or hi >= 2**63:
            bad = lo if lo < 0 else hi
            raise InputError(f"{where}: sequence {i} has id {bad}, outside the tokenizer's "
                             f"vocabulary of {vocab_size}")
        sequences.append(torch.tensor(seq, dtype=torch.long))
    if len(_PARSED) >= 4:  # a training and a validation file, and the next ones
        _PARSED.clear()
    _PARSED[key] = sequences
    return sequences


def check_stackable(dataset, batch_size, flag):
    """Batches are stacked as they are (no padding): a ragged file works at batch size 1 only."""
    lengths = {len(s) for s in dataset}
    if batch_size > 1 and len(lengths) > 1:
        raise InputError(f"{flag} {dataset.path}: sequences of {len(lengths)} different lengths "
                         f"({min(lengths)} to {max(lengths)} tokens) cannot be stacked into batches of "
                         f"--batch_size {batch_size}; rebuild it with python3 prepare_data.py "
                         "(fixed-length windows) or use --batch_size 1")


class Repeated:
    """The first ``length`` items of ``dataset`` walked again and again in the same order."""

    def __init__(self, dataset, length):
        self.dataset, self.length = dataset, length

    def __len__(self):
        return self.length

    def __getitem__(self, idx):
        return self.dataset[idx % len(self.dataset)]


def train_loader(dataset, num_sequences, batch_size, log, first_batch=0):
    """The starter's DataLoader; past the end of the file it walks it again in the same order.

    With ``first_batch`` it starts at that batch, without reading the ones before: the loader
    does not shuffle, so batch i is always the same slice of the file.
    """
    import torch
    from torch.utils.data import DataLoader
    if num_sequences > len(dataset):
        log(f"--num_sequences {num_sequences:,} is more than the {len(dataset):,} sequences of "
            f"{dataset.path}: walking it {num_sequences / len(dataset):.2f} times, in the same order")
        dataset = Repeated(dataset, num_sequences)
    if first_batch:
        dataset = torch.utils.data.Subset(dataset, range(min(first_batch * batch_size, len(dataset)), len(dataset)))
    return DataLoader(dataset, batch_size=batch_size, shuffle=False)


def load_tokenizer(path, flag="--tokenizer"):
    """The kit's tokenizer via transformers; an InputError when it is missing or not loadable."""
    path = kit_path(path)  # "my_tokenizer" works from any working directory
    if not (path / "tokenizer.json").is_file():
        raise InputError(f"{flag} {path}: no tokenizer.json there (the kit's tokenizer is my_tokenizer/)")
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    except Exception as e:
        raise InputError(f"{flag} {path}: cannot load it ({str(e).splitlines()[0][:120]})")
    if tokenizer.convert_tokens_to_ids("</s>") != EOS_ID:
        raise InputError(f"{flag} {path}: </s> is not id {EOS_ID}, as the kit's data needs")
    return tokenizer


def default_paths():
    """The prepared training and validation files that the data flags default to."""
    return tuple(DATA_DIR / name for name in PREPARED)


def default_data_missing():
    return not all(path.is_file() for path in default_paths())
