"""The homework's one rule: no nn.RNN, nn.RNNCell, nn.MultiheadAttention or their functional
equivalents (F.scaled_dot_product_attention included), checked two ways.

At run time (``install_hooks``, in the child process that runs a student's code, before the
student's file is imported): the forbidden classes' ``__init__`` is wrapped, and a
``TorchFunctionMode`` sees every torch function the code enters, so a name built at run time
(``getattr(nn, "R" + "NN")``), ``importlib`` or a functional call (``torch.rnn_tanh``,
``torch._VF.lstm``, ``F.scaled_dot_product_attention``) is seen as what it is. (A
``TorchDispatchMode`` alone would see nn.RNN only as the matrix products it decomposes into.)
Each use is recorded with the line of the student's file that made it.

Statically (``static_uses``, in the runner's process, which never imports the file): an AST
scan for the forbidden names as the file writes them (``nn.RNN``, ``torch.nn.RNN``,
``from torch.nn import RNN``, ``F.scaled_dot_product_attention``, ...), with line numbers and
the top-level class or function each is in.
"""

import ast
import sys

# The name the message gives, by class name (each forbidden class and what derives from it).
FORBIDDEN_CLASSES = {
    "RNNBase": "nn.RNNBase", "RNN": "nn.RNN", "LSTM": "nn.LSTM", "GRU": "nn.GRU",
    "RNNCellBase": "nn.RNNCellBase", "RNNCell": "nn.RNNCell", "LSTMCell": "nn.LSTMCell", "GRUCell": "nn.GRUCell",
    "MultiheadAttention": "nn.MultiheadAttention", "Transformer": "nn.Transformer",
    "TransformerEncoderLayer": "nn.TransformerEncoderLayer", "TransformerDecoderLayer": "nn.TransformerDecoderLayer",
    "TransformerEncoder": "nn.TransformerEncoder", "TransformerDecoder": "nn.TransformerDecoder",
}
# The name the message gives, by the ``__name__`` of a torch function (as a TorchFunctionMode sees it).
FORBIDDEN_FUNCTIONS = {
    "scaled_dot_product_attention": "F.scaled_dot_product_attention",
    "_scaled_dot_product_attention_math": "F.scaled_dot_product_attention",
    "_scaled_dot_product_flash_attention": "F.scaled_dot_product_attention",
    "_scaled_dot_product_efficient_attention": "F.scaled_dot_product_attention",
    "multi_head_attention_forward": "nn.MultiheadAttention (F.multi_head_attention_forward)",
    "_native_multi_head_attention": "nn.MultiheadAttention (torch._native_multi_head_attention)",
    "_transformer_encoder_layer_fwd": "nn.TransformerEncoderLayer",
    "rnn_tanh": "nn.RNN (torch.rnn_tanh)", "rnn_relu": "nn.RNN (torch.rnn_relu)",
    "rnn_tanh_cell": "nn.RNNCell (torch.rnn_tanh_cell)", "rnn_relu_cell": "nn.RNNCell (torch.rnn_relu_cell)",
    "lstm": "nn.LSTM (torch.lstm)", "lstm_cell": "nn.LSTMCell (torch.lstm_cell)",
    "gru": "nn.GRU (torch.gru)", "gru_cell": "nn.GRUCell (torch.gru_cell)",
}
# What a module's own use of a forbidden class also enters: not worth a second name.
_IMPLIED = {"nn.RNN": ("nn.RNN (torch.rnn_tanh)", "nn.RNN (torch.rnn_relu)"),
            "nn.RNNCell": ("nn.RNNCell (torch.rnn_tanh_cell)", "nn.RNNCell (torch.rnn_relu_cell)"),
            "nn.LSTM": ("nn.LSTM (torch.lstm)",), "nn.GRU": ("nn.GRU (torch.gru)",),
            "nn.LSTMCell": ("nn.LSTMCell (torch.lstm_cell)",), "nn.GRUCell": ("nn.GRUCell (torch.gru_cell)",),
            "nn.MultiheadAttention": ("nn.MultiheadAttention (F.multi_head_attention_forward)",
                                      "nn.MultiheadAttention (torch._native_multi_head_attention)",
                                      "F.scaled_dot_product_attention")}


def message(uses, name="rnn.py"):
    """'uses nn.RNN (rnn.py line 12), which the handout forbids' for [(label, line or None), ...]."""
    labels = [label for label, _ in uses]
    shown, seen = [], set()
    for label, line in uses:
        if label in seen or any(label in _IMPLIED.get(other, ()) for other in labels if other != label):
            continue
        seen.add(label)
        if line and label.endswith(")"):  # 'nn.RNN (torch.rnn_tanh)': the line goes inside
            shown.append(f"{label[:-1]}, {name} line {line})")
        else:
            shown.append(f"{label} ({name} line {line})" if line else label)
    listed = shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]
    return f"uses {listed}, which the handout forbids"


# ============================================================== at run time (in the child)

def install_hooks(student_file, record):
    """Watch for forbidden uses from now on: ``record(label, line)`` for each, ``line`` being the
    line of ``student_file`` (a path string) that made it, or None if no frame of it is on the stack."""
    import torch.nn as nn
    from torch.overrides import TorchFunctionMode

    def student_line():
        frame = sys._getframe(2)
        while frame is not None:
            if frame.f_code.co_filename == student_file:
                return frame.f_lineno
            frame = frame.f_back
        return None

    def wrap_init(cls):
        original = cls.__init__

        def __init__(self, *args, **kwargs):
            for klass in type(self).__mro__:  # the first forbidden class it is (a subclass too)
                if klass.__module__.startswith("torch.") and klass.__name__ in FORBIDDEN_CLASSES:
                    record(FORBIDDEN_CLASSES[klass.__name__], student_line())
                    break
            original(self, *args, **kwargs)

        __init__.__wrapped__ = original
        cls.__init__ = __init__

    done = set()
    for name in FORBIDDEN_CLASSES:
        cls = getattr(nn, name, None)
        if isinstance(cls, type) and cls not in done and "__init__" in vars(cls):
            wrap_init(cls)
            done.add(cls)

    class ForbiddenUse(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            label = FORBIDDEN_FUNCTIONS.get(getattr(func, "__name__", None))
            if label is not None:
                record(label, student_line())
            return func(*args, **(kwargs or {}))

    mode = ForbiddenUse()
    mode.__enter__()  # for the rest of the process
    return mode


# ============================================================ statically (in the runner)

_FORBIDDEN_ATTRS = {**{name: label for name, label in FORBIDDEN_CLASSES.items()},
                    "scaled_dot_product_attention": "F.scaled_dot_product_attention",
                    "multi_head_attention_forward": "F.multi_head_attention_forward",
                    **{name: f"torch.{name}" for name in ("rnn_tanh", "rnn_relu", "rnn_tanh_cell", "rnn_relu_cell",
                                                          "lstm", "lstm_cell", "gru", "gru_cell",
                                                          "_native_multi_head_attention")}}


def _dotted(node, aliases):
    """'torch.nn.RNN' for nn.RNN when ``import torch.nn as nn``; None when not rooted in an import."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in aliases:
        return None
    return ".".join([aliases[node.id]] + parts[::-1])


def static_uses(source):
    """[(label, line, top-level name or None)] for each forbidden name the source writes.

    A file that does not parse gives []: importing it fails, and says why, anyway."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    found = []
    for top in tree.body:
        owner = top.name if isinstance(top, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) else None
        aliases = {}
        for node in ast.walk(tree):  # imports anywhere in the file bind names used here
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name == "torch" or a.name.startswith("torch."):
                        if a.asname:
                            aliases[a.asname] = a.name
                        else:
                            aliases["torch"] = "torch"
            elif isinstance(node, ast.ImportFrom) and node.module and (node.module == "torch"
                                                                       or node.module.startswith("torch.")):
                for a in node.names:
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        for node in ast.walk(top):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "torch":
                for a in node.names:
                    if a.name in _FORBIDDEN_ATTRS:
                        found.append((_FORBIDDEN_ATTRS[a.name], node.lineno, owner))
            elif isinstance(node, ast.Attribute) and node.attr in _FORBIDDEN_ATTRS:
                dotted = _dotted(node, aliases)
                if dotted is not None and dotted.split(".")[0] == "torch":
                    found.append((_FORBIDDEN_ATTRS[node.attr], node.lineno, owner))
    return sorted(set(found), key=lambda f: f[1])
