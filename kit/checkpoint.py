"""The checkpoint format: a plain dict (config, state_dict, tokenizer, args; a run's "training"
state too), saved with torch.save and read back with ``torch.load(path, weights_only=True)``,
which runs no code. Never a pickled module."""

import pickle
import re
from pathlib import Path

from kit.files import InputError


def checkpoint_dict(lm, tokenizer_path="my_tokenizer", args=None):
    """A plain dict (config, state_dict, tokenizer path, training arguments): loads with weights_only.

    ``torch.save(rnn.checkpoint_dict(lm), "model.pt")`` saves a model of your own the kit's way.
    """
    return {"config": dict(lm.config),
            "state_dict": {k: v.detach().cpu() for k, v in lm.state_dict().items()},
            "tokenizer": str(tokenizer_path),
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in (args or {}).items()}}


def _sizes_of_state_dict(state):
    """The constructor arguments (E, H, V, dk, dv) a bare state_dict of the starter's model implies, or None."""
    try:
        V, E = state["embeddings.weight"].shape
        H = state["rnn.cell.h2h.weight"].shape[0]
        dk = state["attention.query_transform.weight"].shape[0]
        dv = state["attention.value_transform.weight"].shape[0]
    except (KeyError, AttributeError, ValueError, IndexError):
        return None
    return int(E), int(H), int(V), int(dk), int(dv)


def _keys_found(checkpoint, most=6):
    keys = [repr(k) if not isinstance(k, str) else k for k in checkpoint]
    return ", ".join(keys[:most]) + (f", ... ({len(keys)} in all)" if len(keys) > most else "")


def read_checkpoint(path):
    """``torch.load(path, weights_only=True)`` of a kit checkpoint, or an InputError saying what the file is."""
    import torch
    where = f"--checkpoint {path}"
    if not Path(path).is_file():
        raise InputError(f"{where}: no such file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:  # weights_only refuses a pickled object; also a non-torch pickle
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        if found is None:
            raise InputError(f"{where}: not a file torch.load can read (not a PyTorch checkpoint)")
        raise InputError(f"{where}: a pickled {found.group(1)} object (torch.save of a whole model?), which the "
                         "kit does not unpickle since that runs code; save the kit's plain dict instead: "
                         "torch.save(rnn.checkpoint_dict(lm), path), or train with rnn.py --checkpoint PATH")
    except Exception:  # not a zip or pickle at all (RuntimeError, EOFError, ...)
        raise InputError(f"{where}: not a file torch.load can read (not a PyTorch checkpoint)")
    if not isinstance(checkpoint, dict):
        raise InputError(f"{where}: holds a {type(checkpoint).__name__}, not the kit's checkpoint dict "
                         "(config, state_dict, ...) that rnn.py --checkpoint PATH writes")
    if "config" not in checkpoint and checkpoint and all(torch.is_tensor(v) for v in checkpoint.values()):
        sizes = _sizes_of_state_dict(checkpoint)
        call = f"rnn.RNNLanguageModel{sizes}" if sizes else "rnn.RNNLanguageModel(E, H, V, dk, dv)"
        raise InputError(f"{where}: a bare state_dict ({len(checkpoint)} tensors, no config); build the model and "
                         f"load it: lm = {call}; lm.load_state_dict(torch.load(path, weights_only=True))")
    missing = [key for key in ("config", "state_dict") if key not in checkpoint]
    if missing:
        found = f"its keys are {_keys_found(checkpoint)}" if checkpoint else "it is empty"
        raise InputError(f"{where}: a dict without {' or '.join(missing)} ({found}), not a checkpoint of rnn.py")
    return checkpoint


def model_from_checkpoint(checkpoint, model_class, where="checkpoint"):
    """Rebuild ``model_class`` (rnn.RNNLanguageModel) from a checkpoint dict; an InputError naming what does not fit."""
    try:
        config = dict(checkpoint["config"])
        lm = model_class(config.pop("embed_dim"), config.pop("hidden_dim"), config.pop("vocab_size"),
                         config.pop("key_dim"), config.pop("value_dim"), **config)
        state = dict(checkpoint["state_dict"])
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"{where}: its config is not rnn.py's ({type(e).__name__}: {e})")
    expected = lm.state_dict()
    for name, tensor in expected.items():
        if name not in state:
            raise InputError(f"{where}: weights do not fit its config: {name} is missing")
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise InputError(f"{where}: weights do not fit its config: {name} is {tuple(state[name].shape)} "
                             f"in the file but {tuple(tensor.shape)} by its config")
    extra = [name for name in state if name not in expected]
    if extra:
        raise InputError(f"{where}: weights do not fit its config: {extra[0]} is not a parameter of the model")
    lm.load_state_dict(state)
    return lm
