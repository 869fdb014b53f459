"""The homework's one rule: no nn.RNN, nn.RNNCell, nn.MultiheadAttention or their functional
equivalents (F.scaled_dot_product_attention included), checked in two layers.

**The check of record is static** (``static_uses``): it runs in the runner's process, on the
file's source, where the student's code cannot reach it. It returns ``[(label, line, owner)]``:

* each forbidden name the file writes (``nn.RNN``, ``torch.nn.RNN``, ``from torch.nn import
  RNN``, ``F.scaled_dot_product_attention``, ``torch._VF.lstm``, ``torch.ops.aten.rnn_relu``,
  ...), through aliases anywhere in the file too (``m = torch.nn; m.RNN``, ``from torch import
  nn as q; q.RNN``, ``R = nn.RNN``, ``getattr(nn, "RNN")``, ``F.torch.nn.RNN``); ``owner`` is
  the top-level class or function it is written in (or None): it counts against the
  components that run that definition;
* each **escape**: a construct that could reach a forbidden name without writing it, switch
  the run-time watch off, or attack the grader. Its label starts with ``ESCAPE`` and its owner
  is None: it counts against every check. What a file may use:

  - **imports** (any other import is an escape naming the module): ``__future__``, abc,
    argparse, bisect, collections (and collections.abc), contextlib, copy, csv, dataclasses,
    datetime, decimal, enum, fractions, functools, gc (collect, enable, disable, thresholds
    only: not get_objects or get_referrers), glob, gzip, hashlib, heapq, io, itertools, json,
    logging (not logging.config or logging.handlers), math, numbers, operator (not attrgetter
    or methodcaller), os and os.path (see below), pathlib, pickle (dump and dumps only: never
    loads), platform, pprint, random, re, shutil, statistics, string (not Formatter), sys (its
    plain attributes only: argv, exit, path, stdout, version, ...; not modules, meta_path,
    _getframe, settrace, ...), tempfile, textwrap, time, traceback (not walk_stack, walk_tb),
    types (SimpleNamespace only), typing and typing_extensions (not get_type_hints or
    ForwardRef, which eval strings), unicodedata, warnings; numpy (and numpy.random, .linalg,
    .fft, .ma, .polynomial, .typing); torch and its public submodules, but those that run code
    from strings or files, reach its dispatcher or start processes: torch.ops, torch.library,
    torch.overrides, torch.jit, torch.fx, torch.export, torch.package, torch.hub,
    torch.classes, torch.testing, torch.onnx, torch.multiprocessing, torch.distributed,
    torch.utils.cpp_extension, torch.utils.benchmark, torch.utils.model_zoo,
    torch.utils.collect_env, torch.utils.bottleneck, torch.cuda.jiterator, ... and every
    private one (torch._C, torch._VF, torch._dynamo, ...); torch.nn.attention is named as
    F.scaled_dot_product_attention; transformers (its top level, its tokenization modules,
    transformers.utils.logging), tokenizers, tqdm (not tqdm.contrib), matplotlib (not
    matplotlib.testing or matplotlib.animation, which runs a program from a path it is
    given); and the kit's own ``kit`` and ``prepare_data``, which the kit's rnn.py imports:
    they hold no answer (the child's harness has them only for the kit's rnn.py), and every
    module they reach is held to this list like any other, so a student's file gains nothing
    from them. A module an attribute reaches is judged by what it really is (``torch.sys``,
    ``F.torch``, ``typing.sys`` are sys, torch and sys): the runner imports the allowed
    modules a file imports and follows its attributes on the real objects (but transformers,
    tokenizers, tqdm and matplotlib, judged by the names written, which importing would cost
    the runner a second or more).
  - **no** ``exec``, ``eval``, ``compile`` (but a function's own variable of the name, or the
    file's own top-level function of the name defined before anything runs), ``__import__``,
    ``globals``, ``locals``, ``breakpoint``, ``__builtins__``, ``__loader__``, ``__spec__``;
    no relative import, no ``*`` import (but from math and typing);
  - **no private attribute** (``_x``) of a module or of an allowed module's class or
    function; of the dunders only the harmless ones (``__init__``, ``__name__``,
    ``x.__class__.__name__``, ``__len__``, ``__dict__`` as below, ...): not
    ``__subclasses__``, ``__globals__``, ``__wrapped__``, ``__getattribute__``, ``__mro__``,
    ``__base__``, ``__self__``, ``__code__``, ``__traceback__``, ...; no frame attribute
    (``f_globals``, ``tb_frame``, ``gi_frame``, ...) and no ``.ctypes`` on anything;
  - **a module is never a value** (nor is os.environ): passed, stored, returned, put in a
    container or a class attribute (``f(nn)``, ``[torch]``, ``self.m = nn``), since what is
    done with it there is past the scan; ``name = module`` is followed as an alias instead;
  - ``getattr``/``setattr``/``delattr``/``vars`` only called, never passed as values;
    ``getattr(x, "name")`` is read as ``x.name``; ``getattr(x, computed)`` is an escape, but
    on the student's own objects (never a module or an allowed module's class) when the name
    starts with a constant that no dangerous name starts with (``getattr(self, f"head_{i}")``)
    or is bound only to string constants (a literal tuple, a constant of the kit's);
    ``setattr``/``delattr`` with a computed name are escapes on modules and their classes
    only; ``vars(x)`` and ``x.__dict__`` on the student's own objects only, and used where
    nothing dangerous comes out of them (printed, json-dumped, given to ``.update()``, read
    by a safe literal key; iterated by items when ``x`` is bound only by ``parse_args()``);
  - **os**: not os.system, os.popen, os.fork, os.kill, os.killpg, os.setsid, os.exec*,
    os.spawn*, os.posix_spawn*, os.abort, os._exit, os.putenv, os's file-descriptor calls
    (os.open, os.write, os.fdopen, os.dup2, os.pipe, ...) or its privilege calls; os.environ
    read freely, but set only for the keys students set (TOKENIZERS_PARALLELISM,
    CUDA_VISIBLE_DEVICES, CUBLAS_WORKSPACE_CONFIG, OMP_NUM_THREADS, ...: never PATH,
    LD_PRELOAD, PYTHONPATH, CC, ..., which would have a program a library starts run the
    file's code), never updated, popped or cleared;
  - **no** ``trust_remote_code=``, ``allow_pickle=`` (other than False), ``pickle_module=``:
    they run code from files the student's code could write.

  Not importable at all: ctypes, importlib, inspect, builtins, subprocess, signal, resource,
  socket, multiprocessing, threading, _thread, concurrent, asyncio, marshal, shelve, copyreg,
  codecs, base64, runpy, code, pdb, atexit, ... What the scan cannot see, and the run-time
  layer covers: code the file writes to disk and then imports (refused, below). What neither
  sees: a pickle the file writes and loads with ``torch.load(weights_only=False)`` (or by
  default, before torch 2.6).

**At run time** (``install_hooks``, in the child process that runs a student's code, before
the student's file is imported), a second layer: the forbidden classes' ``__init__`` is
wrapped, and a ``TorchFunctionMode`` sees every torch function the code enters -- ``torch.*``,
``torch._VF.*``, ``F.*`` and ``torch.ops.aten.*`` calls alike (an ``OpOverload`` as
``rnn_relu_cell.default``, an ``OpOverloadPacket`` as ``rnn_relu_cell``, in torch 2.5 and 2.13
both: each is known by its base name) -- so a name built at run time, or a forbidden function a
library calls for the student (transformers' attention), is seen as what it is, with the line
of the student's file that made it; and an import finder refuses a module written while the
file ran. It lives in the student's process, so it could be switched off; the static layer
denies every way to do that which we know of.
"""
import ast
import functools
import importlib
import os
import sys
import time
import types
import unicodedata

# The name the message gives, by class name (each forbidden class and what derives from it).
FORBIDDEN_CLASSES = {
    "RNNBase": "nn.RNNBase", "RNN": "nn.RNN", "LSTM": "nn.LSTM", "GRU": "nn.GRU",
    "RNNCellBase": "nn.RNNCellBase", "RNNCell": "nn.RNNCell", "LSTMCell": "nn.LSTMCell", "GRUCell": "nn.GRUCell",
    "MultiheadAttention": "nn.MultiheadAttention", "Transformer": "nn.Transformer",
    "TransformerEncoderLayer": "nn.TransformerEncoderLayer", "TransformerDecoderLayer": "nn.TransformerDecoderLayer",
    "TransformerEncoder": "nn.TransformerEncoder", "TransformerDecoder": "nn.TransformerDecoder",
}
_SDPA = "F.scaled_dot_product_attention"
_MHA = "nn.MultiheadAttention (torch._native_multi_head_attention)"
# The name the message gives, by the base name of a torch function as a TorchFunctionMode sees it:
# its ``__name__``, less an aten overload's ".default"/".input"/... (torch.ops.aten.lstm.input is 'lstm').
FORBIDDEN_FUNCTIONS = {
    "scaled_dot_product_attention": _SDPA,
    **{name: _SDPA for name in (
        "_scaled_dot_product_attention_math", "_scaled_dot_product_attention_math_for_mps",
        "_scaled_dot_product_flash_attention", "_scaled_dot_product_flash_attention_for_cpu",
        "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention",
        "_scaled_dot_product_fused_attention_overrideable", "_fused_sdp_choice",
        "_flash_attention_forward", "_efficient_attention_forward", "_cudnn_attention_forward",
        "_triton_scaled_dot_attention", "flex_attention")},
    "multi_head_attention_forward": "nn.MultiheadAttention (F.multi_head_attention_forward)",
    "_native_multi_head_attention": _MHA, "_triton_multi_head_attention": _MHA,
    "_transformer_encoder_layer_fwd": "nn.TransformerEncoderLayer",
    "rnn_tanh": "nn.RNN (torch.rnn_tanh)", "rnn_relu": "nn.RNN (torch.rnn_relu)",
    "rnn_tanh_cell": "nn.RNNCell (torch.rnn_tanh_cell)", "rnn_relu_cell": "nn.RNNCell (torch.rnn_relu_cell)",
    "quantized_rnn_tanh_cell": "nn.RNNCell (torch.rnn_tanh_cell)",
    "quantized_rnn_relu_cell": "nn.RNNCell (torch.rnn_relu_cell)",
    "lstm": "nn.LSTM (torch.lstm)", "lstm_cell": "nn.LSTMCell (torch.lstm_cell)",
    "_thnn_fused_lstm_cell": "nn.LSTMCell (torch.lstm_cell)", "quantized_lstm_cell": "nn.LSTMCell (torch.lstm_cell)",
    "quantized_lstm": "nn.LSTM (torch.lstm)", "_lstm_mps": "nn.LSTM (torch.lstm)",
    "mkldnn_rnn_layer": "nn.LSTM (torch.lstm)",
    "gru": "nn.GRU (torch.gru)", "gru_cell": "nn.GRUCell (torch.gru_cell)",
    "_thnn_fused_gru_cell": "nn.GRUCell (torch.gru_cell)", "quantized_gru_cell": "nn.GRUCell (torch.gru_cell)",
    "quantized_gru": "nn.GRU (torch.gru)",
    "_cudnn_rnn": "nn.RNNBase (torch._cudnn_rnn)", "miopen_rnn": "nn.RNNBase (torch.miopen_rnn)",
}
# What a module's own use of a forbidden class also enters: not worth a second name.
_IMPLIED = {"nn.RNN": ("nn.RNN (torch.rnn_tanh)", "nn.RNN (torch.rnn_relu)", "nn.RNNBase (torch._cudnn_rnn)"),
            "nn.RNNCell": ("nn.RNNCell (torch.rnn_tanh_cell)", "nn.RNNCell (torch.rnn_relu_cell)"),
            "nn.LSTM": ("nn.LSTM (torch.lstm)", "nn.RNNBase (torch._cudnn_rnn)"),
            "nn.GRU": ("nn.GRU (torch.gru)", "nn.RNNBase (torch._cudnn_rnn)"),
            "nn.LSTMCell": ("nn.LSTMCell (torch.lstm_cell)",), "nn.GRUCell": ("nn.GRUCell (torch.gru_cell)",),
            "nn.MultiheadAttention": ("nn.MultiheadAttention (F.multi_head_attention_forward)", _MHA, _SDPA),
            "nn.TransformerEncoderLayer": (_MHA, _SDPA, "nn.MultiheadAttention (F.multi_head_attention_forward)")}

ESCAPE = "escape: "  # the label of a construct that defeats the check (static only; owner None)
MESSAGE_ITEMS = 5  # distinct uses a message names; the rest are counted
LABEL_CHARS = 100  # a label is cut to this (labels come from the child too: untrusted)


# ================================================================= the message

def _clean(text, limit=LABEL_CHARS):
    """``text`` as one printable line of at most ``limit`` characters."""
    text = text if isinstance(text, str) else repr(text)
    text = text[:limit * 4]
    text = "".join(" " if unicodedata.category(c).startswith(("C", "Z")) else c for c in text)
    text = " ".join(text.split()) or "?"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _line(line):
    return line if isinstance(line, int) and not isinstance(line, bool) and 0 < line < 10**7 else None


def message(uses, name="rnn.py"):
    """'uses nn.RNN (rnn.py line 12), which the handout forbids' for [(label, line or None), ...].

    Linear in ``uses`` (which a child fills, so is untrusted): each distinct label once, at its
    first line; a label another one implies (nn.RNN's own torch.rnn_tanh) left out; at most
    MESSAGE_ITEMS named, the rest counted; each label cleaned of control characters and cut."""
    name = _clean(name, 60)
    first = {}
    for use in uses:
        try:
            label, line = use
        except (TypeError, ValueError):
            continue
        label, line = _clean(label), _line(line)
        if label not in first or (first[label] is None and line is not None):
            first[label] = line
    implied = set()
    for label in first:
        implied.update(other for other in _IMPLIED.get(label, ()) if other != label)
    kept = [(label, line) for label, line in first.items() if label not in implied]
    forbidden = [(label, line) for label, line in kept if not label.startswith(ESCAPE)]
    escapes = [(label[len(ESCAPE):], line) for label, line in kept if label.startswith(ESCAPE)]

    def shown(label, line):
        if line and label.endswith(")") and " (" in label:  # 'nn.RNN (torch.rnn_tanh)': the line goes inside
            return f"{label[:-1]}, {name} line {line})"
        return f"{label} ({name} line {line})" if line else label

    def listed(items, room):
        items = [shown(label, line) for label, line in items]
        more = len(items) - room
        if more > 0:
            items = items[:room] + [f"{more} more"]
        return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]

    parts = []
    if forbidden:
        parts.append(f"uses {listed(forbidden, MESSAGE_ITEMS)}, which the handout forbids")
    if escapes:
        room = max(1, MESSAGE_ITEMS - min(len(forbidden), MESSAGE_ITEMS))
        parts.append(f"{'it also writes' if forbidden else 'writes'} {listed(escapes, room)}, which the grader does "
                     f"not allow: it could hide a use of nn.RNN, nn.RNNCell, nn.MultiheadAttention or their functional "
                     f"equivalents from the grader's check (grader/rules.py says what a file may use)")
    return "; ".join(parts) if parts else "uses something the handout forbids (what, its report did not say)"


# ============================================================== at run time (in the child)

def _base_name(func):
    """'rnn_relu_cell' for torch.rnn_relu_cell, torch.ops.aten.rnn_relu_cell and its .default."""
    name = getattr(func, "__name__", None)
    if not isinstance(name, str):
        return None
    name = name.rsplit("::", 1)[-1]  # a schema's 'aten::name'
    return name.split(".", 1)[0]  # an OpOverload's 'name.overload'


def install_hooks(student_file, record):
    """Watch for forbidden uses from now on: ``record(label, line)`` for each, ``line`` being the
    line of ``student_file`` (a path string) that made it, or None if no frame of it is on the stack."""
    import torch
    import torch.nn as nn
    from torch.overrides import TorchFunctionMode

    classes = dict(FORBIDDEN_CLASSES)  # copies: emptying the module's tables changes nothing here
    functions = dict(FORBIDDEN_FUNCTIONS)
    getframe = sys._getframe

    def student_line():
        frame = getframe(2)
        while frame is not None:
            if frame.f_code.co_filename == student_file:
                return frame.f_lineno
            frame = frame.f_back
        return None

    def wrap_init(cls):
        original = cls.__init__

        def __init__(self, *args, **kwargs):
            for klass in type(self).__mro__:  # the first forbidden class it is (a subclass too)
                if klass.__module__.startswith("torch.") and klass.__name__ in classes:
                    record(classes[klass.__name__], student_line())
                    break
            original(self, *args, **kwargs)

        __init__.__qualname__ = getattr(original, "__qualname__", "__init__")
        __init__.__doc__ = getattr(original, "__doc__", None)
        cls.__init__ = __init__  # no __wrapped__: nothing to put back

    done = set()
    for name in classes:
        cls = getattr(nn, name, None)
        if isinstance(cls, type) and cls not in done and "__init__" in vars(cls):
            wrap_init(cls)
            done.add(cls)

    class ForbiddenUse(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            label = functions.get(_base_name(func))
            if label is not None:
                record(label, student_line())
            return func(*args, **(kwargs or {}))

    mode = ForbiddenUse()
    mode.__enter__()  # for the rest of the process
    start = time.time()
    time.sleep(0.03)  # a file's times come from a coarser clock (a tick behind): what is written from now is later
    sys.meta_path.insert(0, _NoCodeWrittenSince(start, record, student_line, os.path.dirname(torch.__file__)))
    return mode


class _NoCodeWrittenSince:
    """An import finder, first on sys.meta_path, that refuses a module whose file was written (or
    had its times changed: its ctime) after ``start``, unless torch's own code imports it (torch
    2.5 writes and imports a module of its own, _remote_module_non_scriptable, the first time
    torch._dynamo loads): the student's code writing a module and importing it, itself or through
    a library that imports by name (a file beside it named like a module it imports, a matplotlib
    backend, ...), would run code the static check never saw. Installed modules are older."""

    def __init__(self, start, record, where, torch_dir):
        self.start, self.record, self.where = start, record, where
        self.trusted = os.path.join(torch_dir, "")
        self.machinery = (os.path.join(os.path.dirname(importlib.__file__), ""), __file__, "<frozen importlib")

    def importer(self):
        """The file of the code that asked for the import (past the import machinery)."""
        frame = sys._getframe(2)
        while frame is not None and frame.f_code.co_filename.startswith(self.machinery):
            frame = frame.f_back
        return frame.f_code.co_filename if frame is not None else ""

    def find_spec(self, name, path=None, target=None):
        spec = None
        for finder in list(sys.meta_path):
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(name, path, target)
            if spec is not None:
                break
        origin = getattr(spec, "origin", None)
        if spec is None or not getattr(spec, "has_location", False) or not isinstance(origin, str):
            return spec
        place = origin
        while place and not os.path.exists(place):  # a module inside a zip: the zip's own times
            parent = os.path.dirname(place)
            place = parent if parent != place else ""
        try:
            info = os.stat(place)
        except OSError:
            return spec
        if max(info.st_ctime, info.st_mtime) > self.start and not self.importer().startswith(self.trusted):
            self.record(ESCAPE + f"an import of {name}, written while the grader ran the file", self.where())
            raise ImportError(f"{name}: {origin} was written while the grader ran this file; the grader does not "
                              f"import code it has not checked")
        return spec


# ============================================================ statically (in the runner)

# Forbidden names as a file may write them (an attribute of torch, an import from it), and their labels.
_FORBIDDEN_ATTRS = {
    **FORBIDDEN_CLASSES,
    **{name: label for name, label in FORBIDDEN_FUNCTIONS.items() if name.startswith("_") or name == "flex_attention"},
    "scaled_dot_product_attention": _SDPA,
    "multi_head_attention_forward": "F.multi_head_attention_forward",
    **{name: f"torch.{name}" for name in ("rnn_tanh", "rnn_relu", "rnn_tanh_cell", "rnn_relu_cell",
                                          "lstm", "lstm_cell", "gru", "gru_cell", "_native_multi_head_attention")},
    "quantized_lstm_cell": "torch.lstm_cell", "quantized_gru_cell": "torch.gru_cell",
    "quantized_rnn_tanh_cell": "torch.rnn_tanh_cell", "quantized_rnn_relu_cell": "torch.rnn_relu_cell",
    "quantized_lstm": "torch.lstm", "quantized_gru": "torch.gru", "miopen_rnn": "torch.miopen_rnn",
}
_FORBIDDEN_MODULES = {"torch.nn.attention": f"{_SDPA} (torch.nn.attention)"}

_STDLIB = frozenset({
    "__future__", "abc", "argparse", "bisect", "collections", "collections.abc", "contextlib", "copy", "csv",
    "dataclasses", "datetime", "decimal", "enum", "fractions", "functools", "glob", "gzip", "hashlib", "heapq",
    "io", "itertools", "json", "logging", "math", "numbers", "operator", "os", "os.path", "posixpath", "ntpath",
    "pathlib", "platform", "pprint", "random", "re", "shutil", "statistics", "string", "sys", "tempfile", "gc",
    "pickle",
    "textwrap", "time", "traceback", "types", "typing", "typing_extensions", "unicodedata", "warnings",
})
_NUMPY = frozenset({"numpy", "numpy.random", "numpy.linalg", "numpy.fft", "numpy.ma", "numpy.polynomial",
                    "numpy.typing"})
_TRANSFORMERS = frozenset({"transformers", "transformers.tokenization_utils", "transformers.tokenization_utils_base",
                           "transformers.tokenization_utils_fast", "transformers.utils.logging"})
_TORCH_DENIED = ("torch.ops", "torch.library", "torch.overrides", "torch.jit", "torch.fx", "torch.export",
                 "torch.package", "torch.hub", "torch.classes", "torch.testing", "torch.onnx", "torch.multiprocessing",
                 "torch.distributed", "torch.utils.cpp_extension", "torch.utils.benchmark", "torch.utils.model_zoo",
                 "torch.utils.collect_env", "torch.utils.bottleneck", "torch.utils.hipify", "torch.utils.show_pickle",
                 "torch.utils.jit", "torch.utils.bundled_inputs", "torch.utils.mobile_optimizer",
                 "torch.cuda.jiterator")


def _under(name, prefixes):
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def module_allowed(name):
    """Whether a file may import ``name`` (a dotted module name) or reach the module by an attribute."""
    if not isinstance(name, str) or not name:
        return False
    parts = name.split(".")
    if name != "__future__" and any(p.startswith("_") for p in parts):
        return False
    top = parts[0]
    if top == "torch":
        return not _under(name, _TORCH_DENIED)
    if top == "numpy":
        return name in _NUMPY
    if top == "transformers":
        return name in _TRANSFORMERS
    if top == "tqdm":
        return not _under(name, ("tqdm.contrib",))
    if top == "matplotlib":  # not its test helpers, nor animation (which runs ffmpeg from a path it is given)
        return not _under(name, ("matplotlib.testing", "matplotlib.animation"))
    if top in ("tokenizers", "kit") or name == "prepare_data":
        return True
    return name in _STDLIB


_OS_DENIED = frozenset({
    "system", "popen", "fork", "forkpty", "kill", "killpg", "setsid", "setpgid", "setpgrp", "abort",
    "register_at_fork", "open", "fdopen", "write", "writev", "pwrite", "pwritev", "sendfile", "splice",
    "copy_file_range", "dup", "dup2", "pipe", "pipe2", "close", "closerange", "set_inheritable", "set_blocking",
    "openpty", "login_tty", "memfd_create", "eventfd", "pidfd_open", "tcsetpgrp", "chroot", "setuid", "setgid",
    "seteuid", "setegid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups", "initgroups", "startfile",
    "plock", "ptsname", "posix_openpt", "grantpt", "unlockpt", "putenv", "unsetenv", "environb"})
# os.environ keys a file may set (what students set: threads, determinism, logging); setting any other
# (PATH, LD_PRELOAD, PYTHONPATH, CC, ...) could make a program the grader's libraries start run the file's code.
_ENVIRON_KEYS = frozenset({
    "TOKENIZERS_PARALLELISM", "CUDA_VISIBLE_DEVICES", "CUBLAS_WORKSPACE_CONFIG", "CUDA_LAUNCH_BLOCKING",
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_MAX_THREADS", "KMP_DUPLICATE_LIB_OK",
    "PYTORCH_ENABLE_MPS_FALLBACK", "PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_MPS_HIGH_WATERMARK_RATIO", "PYTHONHASHSEED",
    "TF_CPP_MIN_LOG_LEVEL", "TRANSFORMERS_VERBOSITY", "TRANSFORMERS_OFFLINE", "HF_HUB_OFFLINE",
    "HF_HUB_DISABLE_TELEMETRY", "HF_DATASETS_OFFLINE", "WANDB_MODE", "WANDB_SILENT", "WANDB_DISABLED"})
_SYS_ALLOWED = frozenset({
    "argv", "exit", "stdout", "stderr", "stdin", "path", "version", "version_info", "platform", "maxsize",
    "float_info", "int_info", "hash_info", "getsizeof", "getrecursionlimit", "setrecursionlimit", "executable",
    "byteorder", "implementation", "hexversion", "api_version", "flags", "getdefaultencoding",
    "getfilesystemencoding", "maxunicode", "float_repr_style", "exc_info", "exception", "prefix", "base_prefix",
    "exec_prefix", "base_exec_prefix", "dont_write_bytecode", "copyright", "stdlib_module_names",
    "builtin_module_names", "getrefcount", "intern", "is_finalizing", "warnoptions", "orig_argv", "platlibdir"})
_MODULE_ATTRS_DENIED = {
    "typing": {"get_type_hints", "ForwardRef", "evaluate_forward_ref", "get_annotations"},
    "typing_extensions": {"get_type_hints", "ForwardRef", "evaluate_forward_ref", "get_annotations"},
    "string": {"Formatter"},
    "operator": {"attrgetter", "methodcaller"},
    "traceback": {"walk_stack", "walk_tb"},
}
_MODULE_ATTRS_ONLY = {
    "sys": _SYS_ALLOWED, "types": frozenset({"SimpleNamespace"}),
    "gc": frozenset({"collect", "enable", "disable", "isenabled", "get_count", "get_threshold", "set_threshold",
                     "freeze", "unfreeze", "get_freeze_count"}),  # not get_objects, get_referrers, ...
    "pickle": frozenset({"dump", "dumps", "HIGHEST_PROTOCOL", "DEFAULT_PROTOCOL", "PickleError", "PicklingError"}),
}


def _attr_denied(module, attr):
    """Whether ``module.attr`` (``module`` a module's real name) is an escape though the module is allowed."""
    if module in ("os", "posix"):
        return attr in _OS_DENIED or attr.startswith(("exec", "spawn", "posix_spawn"))
    if module in _MODULE_ATTRS_ONLY:
        return attr not in _MODULE_ATTRS_ONLY[module]
    return attr in _MODULE_ATTRS_DENIED.get(module, ())


# Dunder attributes a file may use; any other is an escape (__subclasses__, __globals__, __wrapped__, ...).
_DUNDERS = frozenset("__" + n + "__" for n in (
    "init new name qualname doc module class version file len getitem setitem delitem contains iter next call "
    "repr str format hash bool eq ne lt le gt ge add radd iadd sub rsub isub mul rmul imul matmul rmatmul "
    "truediv rtruediv itruediv floordiv rfloordiv mod rmod pow rpow neg pos abs invert int float index round "
    "enter exit getstate setstate post_init dict slots all path").split())
_CLASS_FOLLOW = frozenset({"__name__", "__qualname__", "__module__"})  # x.__class__ only as x.__class__.__name__
_FRAME_ATTRS = frozenset({
    "f_globals", "f_locals", "f_back", "f_builtins", "f_code", "f_trace", "f_lasti", "tb_frame", "tb_next",
    "gi_frame", "gi_code", "cr_frame", "cr_code", "ag_frame", "ag_code", "co_code", "co_consts", "co_names",
    "cell_contents", "func_globals", "ctypes", "ctypeslib", "_ctypes"})
# Attribute names of unresolved (not importable here) modules that would reach a denied module.
_RISKY_NAMES = frozenset({
    "ops", "library", "overrides", "jit", "fx", "export", "package", "hub", "classes", "testing", "onnx",
    "multiprocessing", "distributed", "cpp_extension", "benchmark", "model_zoo", "sys", "os", "subprocess",
    "ctypes", "importlib", "builtins", "pickle", "marshal", "gc", "socket", "signal", "threading", "resource",
    "runpy", "code", "inspect", "modules", "system", "popen", "fork", "kill"})
_BUILTIN_ESCAPES = frozenset({"exec", "eval", "compile", "__import__", "globals", "locals", "breakpoint"})
_OWN_NAMES_OK = frozenset({"exec", "eval", "compile"})  # a student may define a function of this name
_DUNDER_NAMES = frozenset({"__name__", "__file__", "__doc__", "__all__", "__version__", "__author__",
                           "__qualname__", "__module__", "__class__", "__debug__", "__slots__", "__annotations__"})
_STAR_OK = frozenset({"math", "typing"})
_KEYWORDS_DENIED = {"trust_remote_code": "trust_remote_code=", "allow_pickle": "allow_pickle=",
                    "pickle_module": "pickle_module="}
# What a computed getattr name must not be able to become.
_DANGEROUS_NAMES = frozenset(_FORBIDDEN_ATTRS) | _FRAME_ATTRS | frozenset({"mro"})
# Calls that take a dict and give back nothing dangerous (vars(x), x.__dict__ as their argument).
_DICT_SINKS = frozenset({"print", "str", "repr", "len", "sorted", "list", "set", "tuple", "json.dump", "json.dumps",
                         "pprint.pprint", "pprint.pformat", "pprint.pp"})


class _Unresolved:
    __slots__ = ()

    def __repr__(self):
        return "<unresolved>"


_UNRESOLVED = _Unresolved()
_ENVIRON = os.environ


class _Ref:
    """What a name or attribute chain stands for: a dotted ``path`` (a module's own name where it
    is one) and the object itself where the runner can import it (else _UNRESOLVED)."""

    __slots__ = ("path", "obj", "quiet")

    def __init__(self, path, obj, quiet=False):
        self.path, self.obj, self.quiet = path, obj, quiet  # quiet: past an escape, named already

    @property
    def module(self):
        """True for a module, False for another object, None when unknown."""
        if self.obj is _UNRESOLVED:
            return None
        return isinstance(self.obj, types.ModuleType)

    @property
    def torch(self):
        return self.path == "torch" or self.path.startswith("torch.")

    def _key(self):
        return self.path, id(self.obj), self.quiet

    def __eq__(self, other):
        return isinstance(other, _Ref) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())


# Allowed libraries judged by name, not imported here: importing transformers alone costs the
# runner a second, and none of them is a way to torch's forbidden classes.
_BY_NAME_ONLY = ("transformers", "tokenizers", "matplotlib", "tqdm")


@functools.lru_cache(maxsize=None)
def _import(name):
    """The module ``name`` imported in this process (only allowed modules ever are), or _UNRESOLVED."""
    if not module_allowed(name) or name.split(".")[0] in _BY_NAME_ONLY:
        return _UNRESOLVED
    try:
        return importlib.import_module(name)
    except BaseException:  # noqa: BLE001  (not installed here, or fails: then judged by its name)
        return _UNRESOLVED


_FORBIDDEN_OBJECTS = None


def _forbidden_objects():
    """{id(object): label} of the forbidden classes and functions, as torch here has them."""
    global _FORBIDDEN_OBJECTS
    if _FORBIDDEN_OBJECTS is None:
        found = {}
        try:
            import torch
            import torch.nn.functional as F
            for name, label in FORBIDDEN_CLASSES.items():
                cls = getattr(torch.nn, name, None)
                if cls is not None:
                    found[id(cls)] = label
            for owner in (torch, F, getattr(torch, "_VF", None), getattr(torch, "_C", None)):
                for name, label in _FORBIDDEN_ATTRS.items():
                    obj = getattr(owner, name, None) if owner is not None else None
                    if obj is not None and not isinstance(obj, type):
                        found[id(obj)] = label
        except Exception:  # noqa: BLE001
            pass
        _FORBIDDEN_OBJECTS = found
    return _FORBIDDEN_OBJECTS


def _forbidden_label(obj):
    """The label of ``obj`` if it is a forbidden class (or derives from one) or function."""
    labels = _forbidden_objects()
    if id(obj) in labels:
        return labels[id(obj)]
    if isinstance(obj, type):
        try:
            for klass in obj.__mro__:
                if klass.__module__.startswith("torch.") and klass.__name__ in FORBIDDEN_CLASSES:
                    return FORBIDDEN_CLASSES[klass.__name__]
        except Exception:  # noqa: BLE001
            pass
    return None


_STEPS = {}


def _step(ref, attr):
    """(what ``ref.attr`` is or None where the scan stops, [(kind, label)]): kind 'forbidden' or 'escape'."""
    key = (ref.path, id(ref.obj), ref.quiet, attr)
    if key not in _STEPS:
        _STEPS[key] = (_step_uncached(ref, attr), ref)  # the ref keeps its object alive for the id
    return _STEPS[key][0]


def _step_uncached(ref, attr):
    path = f"{ref.path}.{attr}"
    if ref.quiet:  # past an escape (torch.ops.aten...): only what it names
        if attr in _FORBIDDEN_ATTRS:
            return _Ref(path, _UNRESOLVED, True), [("forbidden", _FORBIDDEN_ATTRS[attr])]
        return _Ref(path, _UNRESOLVED, True), []
    if _is_dunder(attr):  # the dunder check (on every attribute, a Ref or not) reports the others
        return (_Ref(path, _get(ref.obj, attr)) if attr in _DUNDERS else None), []
    if attr in _FORBIDDEN_ATTRS and (ref.torch or ref.obj is _UNRESOLVED):
        return _Ref(path, _UNRESOLVED), [("forbidden", _FORBIDDEN_ATTRS[attr])]
    escape = _Ref(path, _UNRESOLVED, True)
    if attr.startswith("_"):
        return escape, [("escape", path)]
    if ref.obj is _UNRESOLVED:  # a module not importable here: judged by the name alone
        return (escape, [("escape", path)]) if attr in _RISKY_NAMES else (_Ref(path, _UNRESOLVED), [])
    own = getattr(ref.obj, "__name__", None) if isinstance(ref.obj, types.ModuleType) else None
    if isinstance(own, str) and (_attr_denied(own, attr) or _under(f"{own}.{attr}", _TORCH_DENIED)):
        return escape, [("escape", path)]
    value = _get(ref.obj, attr)
    if value is _UNRESOLVED and isinstance(own, str):  # a submodule not imported yet
        if module_allowed(f"{own}.{attr}"):
            value = _import(f"{own}.{attr}")
        elif _is_submodule(own, attr):
            return escape, [("escape", path)]
    if value is _UNRESOLVED:
        return None, []  # no such attribute: whatever the name is there, it is not this module's
    if isinstance(value, types.ModuleType):
        real = getattr(value, "__name__", None)
        if isinstance(real, str) and real in _FORBIDDEN_MODULES:
            return _Ref(real, value), [("forbidden", _FORBIDDEN_MODULES[real])]
        if not module_allowed(real):
            return escape, [("escape", real if isinstance(real, str) else path)]
        return _Ref(real, value), []
    label = _forbidden_label(value)
    return _Ref(path, value), ([("forbidden", label)] if label is not None else [])


def _get(obj, attr):
    if obj is _UNRESOLVED:
        return _UNRESOLVED
    try:
        return getattr(obj, attr)
    except BaseException:  # noqa: BLE001
        return _UNRESOLVED


def _is_submodule(package, name):
    try:
        import importlib.util
        return importlib.util.find_spec(f"{package}.{name}") is not None
    except BaseException:  # noqa: BLE001
        return False


def _import_ref(name):
    return _Ref(name, _import(name))


def _is_dunder(name):
    return name.startswith("__") and name.endswith("__") and len(name) > 4


def _const_str(node):
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _name_prefix(node):
    """The constant text a computed name starts with ('head_' for f"head_{i}"), or None."""
    while isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and _const_str(node.left) is None:
        node = node.left
    if isinstance(node, ast.JoinedStr):
        return _const_str(node.values[0]) if node.values else None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _const_str(node.left)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and _const_str(node.left) is not None:
        return _const_str(node.left).split("%", 1)[0]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        text = _const_str(node.func.value)
        return text.split("{", 1)[0] if text is not None else None
    return None


def _safe_prefix(prefix):
    return bool(prefix) and not prefix.startswith("_") and not any(d.startswith(prefix) for d in _DANGEROUS_NAMES)


def _safe_literal_name(name):
    return not name.startswith("_") and name not in _DANGEROUS_NAMES


class _Scan:
    def __init__(self, tree):
        self.tree = tree
        self.parent = {}
        self.owner = {}
        self.found = set()
        self.in_class_body = set()  # statements directly in a class body
        for top in tree.body:
            owner = top.name if isinstance(top, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) else None
            for node in ast.walk(top):
                self.owner[node] = owner
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                self.parent[child] = node
            if isinstance(node, ast.ClassDef):
                self.in_class_body.update(node.body)
        self.aliases = {}  # name -> {Ref}
        self.bindings = {}  # name -> [binding node or kind]
        self.tangled = False  # aliases too many to follow to the end
        self.bodies = {}  # function -> ids of its body's statements
        self._collect_bindings()
        self._follow_aliases()

    # ---------------------------------------------------------------- findings

    def add(self, kind, label, node):
        line = getattr(node, "lineno", None)
        if kind == "escape":
            self.found.add((ESCAPE + label, line, None))
        else:
            self.found.add((label, line, self.owner.get(node)))

    # ---------------------------------------------------------------- bindings and aliases

    def _bind(self, name, how):
        self.bindings.setdefault(name, []).append(how)

    def _collect_bindings(self):
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
                self._bind(node.id, self.parent.get(node))
            elif isinstance(node, ast.arg):
                self._bind(node.arg, "param")
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self._bind(node.name, node)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for a in node.names:
                    self._bind((a.asname or a.name).split(".")[0], node)
            elif isinstance(node, (ast.Global, ast.Nonlocal)):
                for n in node.names:
                    self._bind(n, node)
            elif isinstance(node, ast.ExceptHandler) and node.name:
                self._bind(node.name, node)
            elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and getattr(node, "name", None):
                self._bind(node.name, node)
            elif isinstance(node, ast.MatchMapping) and node.rest:
                self._bind(node.rest, node)

    def _import_refs(self):
        """{name: {Ref}} that the file's imports bind (allowed imports only: the others are escapes)."""
        refs = {}
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if not module_allowed(a.name):
                        continue
                    if a.asname:
                        refs.setdefault(a.asname, set()).add(_import_ref(a.name))
                    else:
                        top = a.name.split(".")[0]
                        _import(a.name)  # so that top.sub.x resolves
                        refs.setdefault(top, set()).add(_import_ref(top))
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level and module_allowed(node.module):
                base = _import_ref(node.module)
                for a in node.names:
                    if a.name == "*":
                        continue
                    ref, _ = _step(base, a.name)
                    if ref is not None:
                        refs.setdefault(a.asname or a.name, set()).add(ref)
        return refs

    def _follow_aliases(self):
        self.aliases = self._import_refs()
        assigns = []
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
                assigns.append(([t.id for t in node.targets], node.value))
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
                assigns.append(([node.target.id], node.value))
            elif isinstance(node, ast.NamedExpr):
                assigns.append(([node.target.id], node.value))
        readers = {}  # name -> the assignments whose value reads it
        for index, (_, value) in enumerate(assigns):
            for n in ast.walk(value):
                if isinstance(n, ast.Name):
                    readers.setdefault(n.id, []).append(index)
        todo, queued, work = list(range(len(assigns))), set(range(len(assigns))), 0
        while todo:  # to the fixed point, in whatever order the file writes its aliases
            index = todo.pop()
            queued.discard(index)
            work += 1
            if work > 200_000:
                self.tangled = True
                break
            names, value = assigns[index]
            refs = self.refs(value)
            for name in names:
                have = self.aliases.setdefault(name, set())
                new = {r for r in refs if r not in have and r.path.count(".") < 16}
                if new:
                    have.update(new)
                    for reader in readers.get(name, ()):
                        if reader not in queued:
                            queued.add(reader)
                            todo.append(reader)

    def spine(self, node):
        """(base, [(attr, node), ...]) of an attribute chain, getattr(x, "lit") read as x.lit."""
        steps = []
        while True:
            if isinstance(node, ast.Attribute):
                steps.append((node.attr, node))
                node = node.value
            elif self.is_literal_getattr(node):
                steps.append((_const_str(node.args[1]), node))
                node = node.args[0]
            else:
                break
        return node, steps[::-1]

    def is_literal_getattr(self, node):
        return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
                and 2 <= len(node.args) <= 3 and not node.keywords and _const_str(node.args[1]) is not None
                and not any(isinstance(a, ast.Starred) for a in node.args))

    def refs(self, node):
        """The Refs an expression may stand for (a name, an attribute chain); empty for anything else."""
        base, steps = self.spine(node)
        refs = self.base_refs(base)
        for attr, _ in steps:
            refs = {new for new, _ in (_step(r, attr) for r in refs) if new is not None}
            if not refs:
                break
        return refs

    def base_refs(self, base):
        if isinstance(base, ast.Name):
            return set(self.aliases.get(base.id, ()))
        if isinstance(base, ast.NamedExpr):  # (m := nn).RNN
            return self.refs(base.value)
        return set()

    # ---------------------------------------------------------------- the walk

    def run(self):
        if self.tangled:
            self.add("escape", "aliases too many to follow", self.tree.body[0])
        self.visit_imports()
        for node in ast.walk(self.tree):
            self.visit(node)
        return self.found

    def visit_imports(self):
        for node in ast.walk(self.tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and node in self.in_class_body:
                self.add("escape", "an import in a class body (a module stored on the class)", node)
            if isinstance(node, ast.Import):
                for a in node.names:
                    if not module_allowed(a.name):
                        self.add("escape", f"import {a.name}", node)
                    elif a.name in _FORBIDDEN_MODULES:
                        self.add("forbidden", _FORBIDDEN_MODULES[a.name], node)
            elif isinstance(node, ast.ImportFrom):
                module = ("." * node.level) + (node.module or "")
                if node.level:
                    self.add("escape", f"from {module} import (a relative import)", node)
                    continue
                if not module_allowed(node.module):
                    self.add("escape", f"from {module} import ...", node)
                    for a in node.names:  # a forbidden name is named as such too
                        if a.name in _FORBIDDEN_ATTRS and module.split(".")[0] == "torch":
                            self.add("forbidden", _FORBIDDEN_ATTRS[a.name], node)
                    continue
                if module in _FORBIDDEN_MODULES:
                    self.add("forbidden", _FORBIDDEN_MODULES[module], node)
                base = _import_ref(module)
                for a in node.names:
                    if a.name == "*":
                        if module not in _STAR_OK:
                            self.add("escape", f"from {module} import *", node)
                        continue
                    if _is_dunder(a.name) and a.name not in _DUNDERS:
                        self.add("escape", f"from {module} import {a.name}", node)
                        continue
                    _, findings = _step(base, a.name)
                    for kind, label in findings:
                        self.add(kind, label, node)

    def visit(self, node):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            self.visit_name(node)
        if (isinstance(node, ast.Attribute) or self.is_literal_getattr(node)) and not self.inner_of_spine(node):
            self.visit_chain(node)
        if isinstance(node, ast.Call):
            self.visit_call(node)
        if isinstance(node, (ast.Name, ast.Attribute)) and isinstance(node.ctx, ast.Load) \
                and not self.inner_of_spine(node) and not self.is_literal_getattr(node):
            self.check_value(node)
        elif self.is_literal_getattr(node) and not self.inner_of_spine(node):
            self.check_value(node)
        for annotation in self.string_annotations(node):
            self.visit_string(annotation)

    def inner_of_spine(self, node):
        parent = self.parent.get(node)
        return (isinstance(parent, ast.Attribute) and parent.value is node) or \
               (self.is_literal_getattr(parent) and parent.args[0] is node)

    def visit_name(self, node):
        name = node.id
        parent = self.parent.get(node)
        called = isinstance(parent, ast.Call) and parent.func is node
        if self.is_local(name, node):
            return  # a function's own parameter or variable of that name
        if name in _BUILTIN_ESCAPES:
            if not (name in _OWN_NAMES_OK and self.own_function(name)):
                self.add("escape", f"{name}()" if called else name, node)
        elif name in ("getattr", "setattr", "delattr", "vars") and not called:
            self.add("escape", f"{name} used as a value", node)
        elif _is_dunder(name) and name not in _DUNDER_NAMES:
            self.add("escape", name, node)

    def bound_here(self, name):
        return name in self.bindings

    def is_local(self, name, node):
        """Whether ``name``, read at ``node``, is a variable of an enclosing function or comprehension
        (which never falls back to the builtin); a module's or class's own binding of it does not
        count (it may not have run yet: then the name is the builtin)."""
        child, scope = node, self.parent.get(node)
        while scope is not None:
            if isinstance(scope, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
                if any(name in {n.id for n in ast.walk(g.target) if isinstance(n, ast.Name)} for g in scope.generators):
                    return True
            elif isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                if self.in_body(scope, child) and name in self.scope_locals(scope):
                    return True
            child, scope = scope, self.parent.get(scope)
        return False

    @functools.lru_cache(maxsize=None)
    def scope_locals(self, function):
        """The names a function (or lambda) binds in its own scope, less those it declares global."""
        args = function.args
        names = {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs}
        names.update(a.arg for a in (args.vararg, args.kwarg) if a is not None)
        declared = set()
        todo = list(function.body) if isinstance(function.body, list) else [function.body]
        while todo:
            node = todo.pop()
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
                todo.extend(node.decorator_list)
                continue  # its body is its own scope
            if isinstance(node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
                continue
            if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
                names.add(node.id)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, ast.ExceptHandler) and node.name:
                names.add(node.name)
            elif isinstance(node, (ast.Global, ast.Nonlocal)):
                declared.update(node.names)
            todo.extend(ast.iter_child_nodes(node))
        return frozenset(names - declared)

    @functools.lru_cache(maxsize=None)
    def own_function(self, name):
        """Whether ``name`` is, wherever the file reads it, the file's own top-level function: one
        undecorated top-level def, nothing else binding the name, every read inside a function
        body, and nothing before the def that runs the student's code."""
        binds = self.bindings.get(name, [])
        if any(isinstance(b, (ast.Global, ast.Nonlocal)) for b in binds):
            return False
        binds = [b for b in binds if b != "param" and not self.in_function_body(b)]  # a function's own: its own
        if len(binds) != 1 or not isinstance(binds[0], (ast.FunctionDef, ast.ClassDef)):
            return False
        definition = binds[0]
        if definition not in self.tree.body or definition.decorator_list:
            return False
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Name) and node.id == name and not self.in_function_body(node) \
                    and node is not definition:
                return False
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in (
                    "__init_subclass__", "__set_name__", "__class_getitem__", "__prepare__", "__mro_entries__"):
                return False
        for stmt in self.tree.body[:self.tree.body.index(definition)]:
            if not self.inert(stmt):
                return False
        return True

    def in_body(self, function, child):
        """Whether ``child`` (a child node of ``function``) is in its body, not its decorators or defaults."""
        if isinstance(function, ast.Lambda):
            return child is function.body
        if function not in self.bodies:
            self.bodies[function] = frozenset(map(id, function.body))
        return id(child) in self.bodies[function]

    def in_function_body(self, node):
        child, parent = node, self.parent.get(node)
        while parent is not None:
            if isinstance(parent, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and self.in_body(parent, child):
                return True
            child, parent = parent, self.parent.get(parent)
        return False

    def inert(self, stmt):
        """Whether running ``stmt`` (a top-level statement) runs nothing of the student's own."""
        if isinstance(stmt, (ast.Import, ast.ImportFrom, ast.Pass)):
            return True
        if isinstance(stmt, ast.Expr):
            return self.inert_expr(stmt.value)
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            return stmt.value is None or self.inert_expr(stmt.value)
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = stmt.args
            evaluated = [d for d in args.defaults + args.kw_defaults if d is not None]
            evaluated += [a.annotation for a in ast.walk(args) if isinstance(a, ast.arg) and a.annotation is not None]
            evaluated += [stmt.returns] if stmt.returns is not None else []
            return all(self.inert_decorator(d) for d in stmt.decorator_list) and all(map(self.inert_expr, evaluated))
        if isinstance(stmt, ast.ClassDef):
            return (all(self.inert_decorator(d) for d in stmt.decorator_list) and not stmt.keywords
                    and all(isinstance(b, (ast.Name, ast.Attribute)) for b in stmt.bases)
                    and all(self.inert(s) for s in stmt.body))
        if isinstance(stmt, (ast.If, ast.Try)):
            return all(self.inert(s) for s in ast.walk(stmt) if isinstance(s, ast.stmt) and s is not stmt) \
                and (not isinstance(stmt, ast.If) or self.inert_expr(stmt.test))
        if isinstance(stmt, ast.With):
            return all(self.inert_expr(i.context_expr) for i in stmt.items) and all(self.inert(s) for s in stmt.body)
        return False

    def inert_decorator(self, node):
        if isinstance(node, ast.Name) and node.id in ("staticmethod", "classmethod", "property"):
            return True
        return self.inert_expr(node) and (isinstance(node, ast.Call) or bool(self.refs(node)))

    def inert_expr(self, node):
        for n in ast.walk(node):
            if isinstance(n, (ast.Lambda, ast.Yield, ast.YieldFrom, ast.Await, ast.NamedExpr)):
                return False
            if isinstance(n, ast.Call) and not self.refs(n.func):
                return False
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and not self.aliases.get(n.id) \
                    and n.id not in ("True", "False", "None", "__name__", "__file__"):
                if self.bound_here(n.id) or n.id not in ("int", "float", "str", "bool"):
                    return False
        return True

    def visit_chain(self, top):
        base, steps = self.spine(top)
        refs = self.base_refs(base)
        escapes, forbidden_last = [], False
        for i, (attr, node) in enumerate(steps):
            self.check_attr_name(attr, node, steps[i + 1][0] if i + 1 < len(steps) else None)
            new, last = set(), False
            for ref in refs:
                nref, findings = _step(ref, attr)
                for kind, label in findings:
                    if kind == "forbidden":
                        self.add(kind, label, node)
                        last = True
                    else:
                        escapes.append((self.as_written(label, node), node))
                if nref is not None:
                    new.add(nref)
            if not refs and attr in _FORBIDDEN_ATTRS and self.is_literal_getattr(node):
                self.add("forbidden", _FORBIDDEN_ATTRS[attr], node)  # getattr(anything, "RNN")
                last = True
            if isinstance(node, ast.Attribute) and attr == "__dict__":
                self.check_dict(node, refs, node.value)
            forbidden_last = last and i == len(steps) - 1
            refs = new
        if not forbidden_last:  # torch._VF.lstm is the forbidden function, named: that is what it is
            for label, node in escapes:
                self.add("escape", label, node)

    def as_written(self, label, node):
        """'sys.modules (as torch.sys.modules)' where the file spells it otherwise."""
        try:
            written = ast.unparse(node)
        except Exception:  # noqa: BLE001
            return label
        return label if written == label else f"{label} (as {_clean(written, 60)})"

    def check_attr_name(self, attr, node, following):
        if _is_dunder(attr):
            if attr not in _DUNDERS:
                self.add("escape", f".{attr}", node)
            elif attr == "__class__" and not (following in _CLASS_FOLLOW or self.called(node)):
                self.add("escape", ".__class__ (as a value)", node)
        elif attr in _FRAME_ATTRS:
            self.add("escape", f".{attr}", node)

    def called(self, node):
        parent = self.parent.get(node)
        return isinstance(parent, ast.Call) and parent.func is node

    def visit_call(self, node):
        func = node.func
        for kw in node.keywords:
            harmless = isinstance(kw.value, ast.Constant) and kw.value.value in (False, None)
            if kw.arg in _KEYWORDS_DENIED and not harmless:
                self.add("escape", _KEYWORDS_DENIED[kw.arg], node)
        if isinstance(func, ast.Attribute) and any(r.obj is _ENVIRON for r in self.refs(func.value)):
            key = _const_str(node.args[0]) if node.args else None
            if func.attr in ("update", "pop", "popitem", "clear", "__setitem__", "__delitem__") or \
                    func.attr == "setdefault" and key not in _ENVIRON_KEYS:
                self.add("escape", f"os.environ.{func.attr}()", node)
        if not isinstance(func, ast.Name) or self.is_local(func.id, func):
            return
        args = node.args
        if func.id in ("getattr", "hasattr", "setattr", "delattr"):
            if len(args) < 2 or any(isinstance(a, ast.Starred) for a in args[:2]) or node.keywords:
                self.add("escape", f"{func.id}() with unpacked arguments", node)
                return
            name = _const_str(args[1])
            refs = self.refs(args[0])
            if name is not None:
                if func.id in ("setattr", "delattr"):  # x.name = ..., as for an attribute
                    self.check_attr_name(name, node, None)
                    for ref in refs:
                        for kind, label in _step(ref, name)[1]:
                            self.add(kind, label, node)
                return
            if func.id == "hasattr":
                return
            if refs:
                shown = sorted(r.path for r in refs)[0]
                self.add("escape", f"{func.id}({shown}, a computed name)", node)
            elif func.id == "getattr" and not self.safe_computed_name(args[1]):
                self.add("escape", "getattr with a computed name", node)
        elif func.id == "vars":
            if not args:
                self.add("escape", "vars()", node)
            else:
                self.check_dict(node, self.refs(args[0]), args[0])

    def safe_computed_name(self, node):
        prefix = _name_prefix(node)
        if prefix is not None:
            return _safe_prefix(prefix)
        if isinstance(node, ast.Name):
            values = self.literal_values(node)
            return values is not None and all(_safe_literal_name(v) for v in values)
        return False

    def literal_values(self, use):
        """The strings the name ``use`` can hold, if it is only ever bound to string constants (in
        the comprehension that binds it, else anywhere in the file), or None."""
        name, node = use.id, use
        while node is not None:
            if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
                binding = [g for g in node.generators if name in {n.id for n in ast.walk(g.target)
                                                                   if isinstance(n, ast.Name)}]
                if binding:
                    return self.strings_from(binding[-1].iter, binding[-1].target, name)
            node = self.parent.get(node)
        values = set()
        for how in self.bindings.get(name, []):
            if isinstance(how, ast.Assign) and _const_str(how.value) is not None:
                values.add(how.value.value)
                continue
            if isinstance(how, ast.Tuple):  # for name, _ in ...: the loop is the tuple's parent
                how = self.parent.get(how)
            got = self.strings_from(how.iter, how.target, name) if isinstance(how, (ast.For, ast.comprehension)) \
                else None
            if got is None:
                return None
            values.update(got)
        return values or None

    def strings_from(self, iterable, target, name):
        """The strings ``name`` (in ``target``) takes looping over ``iterable``: a literal list,
        tuple or set, or an immutable tuple the runner can see (an imported constant), or None."""
        if isinstance(iterable, (ast.List, ast.Tuple, ast.Set)):
            items = []
            for e in iterable.elts:
                if _const_str(e) is not None:
                    items.append(e.value)
                elif isinstance(e, ast.Tuple) and all(isinstance(x, ast.Constant) for x in e.elts):
                    items.append(tuple(x.value for x in e.elts))
                else:
                    return None
        else:
            refs = self.refs(iterable)
            if len(refs) != 1 or not isinstance(next(iter(refs)).obj, (tuple, frozenset)):
                return None
            items = list(next(iter(refs)).obj)
        if isinstance(target, ast.Name):
            values = items
        elif isinstance(target, ast.Tuple) and all(isinstance(t, ast.Name) for t in target.elts):
            index = [t.id for t in target.elts].index(name)
            if not all(isinstance(i, tuple) and len(i) == len(target.elts) for i in items):
                return None
            values = [i[index] for i in items]
        else:
            return None
        return set(values) if all(isinstance(v, str) for v in values) else None

    def check_dict(self, node, refs, subject):
        """vars(x) or x.__dict__ (``node``): only on the student's own objects, used where nothing
        dangerous comes out of it."""
        what = "vars()" if isinstance(node, ast.Call) else ".__dict__"
        if refs:
            self.add("escape", f"{what} of {sorted(r.path for r in refs)[0]}", node)
            return
        parent = self.parent.get(node)
        if isinstance(parent, ast.Call) and node in parent.args and self.call_name(parent.func) in _DICT_SINKS:
            return
        if isinstance(parent, ast.FormattedValue):
            return
        if isinstance(parent, ast.Compare) and node in parent.comparators:
            return
        if isinstance(parent, ast.Subscript) and parent.value is node:
            key = _const_str(parent.slice)
            if key is not None and _safe_literal_name(key):
                return
        if isinstance(parent, ast.Attribute) and parent.value is node:
            grand = self.parent.get(parent)
            if parent.attr in ("update", "keys") and isinstance(grand, ast.Call) and grand.func is parent:
                return
            if parent.attr == "get" and isinstance(grand, ast.Call) and grand.func is parent and grand.args \
                    and _const_str(grand.args[0]) is not None and _safe_literal_name(grand.args[0].value):
                return
            if parent.attr in ("items", "values") and self.parsed_arguments(subject):
                return
        if isinstance(parent, ast.keyword) and parent.arg is None and self.parsed_arguments(subject):
            return
        if isinstance(parent, ast.comprehension) and parent.iter is node or \
                isinstance(parent, ast.For) and parent.iter is node:
            return  # its keys: strings
        self.add("escape", f"{what} used as a value", node)

    def parsed_arguments(self, subject):
        """Whether ``subject`` is a name bound only to ``<parser>.parse_args(...)``."""
        if not isinstance(subject, ast.Name):
            return False
        binds = self.bindings.get(subject.id, [])
        return bool(binds) and all(
            isinstance(b, ast.Assign) and len(b.targets) == 1 and isinstance(b.value, ast.Call)
            and isinstance(b.value.func, ast.Attribute) and b.value.func.attr == "parse_args" for b in binds)

    def call_name(self, func):
        if isinstance(func, ast.Name) and not self.bound_here(func.id):
            return func.id
        refs = self.refs(func)
        return sorted(r.path for r in refs)[0] if len(refs) == 1 else None

    def check_value(self, node):
        """A module (or os.environ) is never a value: only an attribute's base, a call, or a plain
        name's alias."""
        refs = self.refs(node)
        if not refs or not any(r.module is not False or r.obj is _ENVIRON for r in refs):
            return
        parent = self.parent.get(node)
        if isinstance(parent, ast.Subscript) and parent.value is node:
            if isinstance(parent.ctx, ast.Store) and any(r.obj is _ENVIRON for r in refs):
                key = _const_str(parent.slice)
                if key not in _ENVIRON_KEYS:
                    self.add("escape", f"os.environ[{_clean(repr(key) if key else 'a computed key', 40)}] = ...", node)
            return  # reading it (a module has no items)
        if isinstance(parent, ast.Compare) and node in parent.comparators and \
                all(isinstance(op, (ast.In, ast.NotIn)) for op in parent.ops):
            return
        if isinstance(parent, ast.Call) and parent.func is node:
            return
        if isinstance(parent, (ast.Assign, ast.AnnAssign)) and parent.value is node:
            targets = parent.targets if isinstance(parent, ast.Assign) else [parent.target]
            if all(isinstance(t, ast.Name) for t in targets) and parent not in self.in_class_body:
                return
        if isinstance(parent, (ast.If, ast.While, ast.IfExp, ast.Assert)) and parent.test is node:
            return
        if isinstance(parent, ast.UnaryOp) and isinstance(parent.op, ast.Not):
            return
        if isinstance(parent, ast.Compare) and all(isinstance(op, (ast.Is, ast.IsNot, ast.Eq, ast.NotEq))
                                                   for op in parent.ops):
            return
        if isinstance(parent, (ast.Expr, ast.FormattedValue)):
            return
        if isinstance(parent, ast.Call) and isinstance(parent.func, ast.Name) \
                and not self.is_local(parent.func.id, parent.func) \
                and parent.func.id in ("getattr", "hasattr", "setattr", "delattr", "vars") and parent.args \
                and parent.args[0] is node:
            return  # judged as that call
        shown = sorted(r.path for r in refs if r.module is not False or r.obj is _ENVIRON)[0]
        self.add("escape", f"{'' if shown == 'os.environ' else 'the module '}{shown} used as a value", node)

    def string_annotations(self, node):
        """Annotations written as strings (evaluated by typing.get_type_hints and its users)."""
        found = []
        if isinstance(node, ast.arg) and node.annotation is not None:
            found.append(node.annotation)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
            found.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            found.append(node.annotation)
        return [a for a in found if _const_str(a) is not None]

    def visit_string(self, annotation):
        try:
            expr = ast.parse(annotation.value.strip(), mode="eval")
        except (SyntaxError, ValueError):
            return
        for n in ast.walk(expr):
            n.lineno = annotation.lineno
            n.col_offset = 0
        owner = self.owner.get(annotation)
        for n in ast.walk(expr):
            self.owner[n] = owner
            for child in ast.iter_child_nodes(n):
                self.parent[child] = n
        self.parent[expr.body] = ast.Expr(value=expr.body)
        for n in ast.walk(expr.body):
            self.visit(n)


def static_uses(source):
    """[(label, line, top-level name or None)] for each forbidden name the source writes and each
    escape (label ``ESCAPE + ...``, owner None): the check of record, run on the source.

    A file that does not parse gives []: importing it fails, and says why, anyway."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return []
    try:
        found = _Scan(tree).run()
    except RecursionError:
        return [(ESCAPE + "a file nested too deeply to check", None, None)]
    return sorted(found, key=lambda f: (f[1] or 0, f[0]))
