"""The homework's rule (grader/rules.py): the static check of record, run on the source in the
runner's process, and the run-time watch, its second layer in the child.

The hostile samples are tests/hostile_rules/*.py: each line that must be reported ends in
``# expect: LABEL`` (several, split by ``|``), LABEL being a part of the finding's label; a
line without it must be reported by nothing. The clean files -- the kit's rnn.py, the literal
completion, and an honest student's file with the imports and idioms students commonly write
(tests/hostile_rules/honest.py, own_eval.py) -- must give no finding at all: the policy never
costs an honest student a mark.
"""

import ast
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import unittest
from pathlib import Path

from grader import rules

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "tests" / "hostile_rules"
CLEAN = {"honest.py", "own_eval.py"}  # the samples that must give no finding
EXPECT = re.compile(r"#\s*expect:\s*(.+?)\s*$")


def expectations(source):
    """{line: [label part, ...]} from the ``# expect:`` comments of a sample."""
    found = {}
    for number, line in enumerate(source.splitlines(), 1):
        m = EXPECT.search(line)
        if m:
            found[number] = [part.strip() for part in m.group(1).split("|")]
    return found


def by_line(findings):
    lines = {}
    for label, line, owner in findings:
        lines.setdefault(line, []).append((label, owner))
    return lines


class CleanFilesTest(unittest.TestCase):
    """Nothing an honest student writes is reported."""

    def test_the_kit_the_literal_completion_and_the_honest_samples_give_no_finding(self):
        paths = [REPO / "rnn.py", REPO / "tests" / "literal" / "rnn.py"] + [SAMPLES / name for name in sorted(CLEAN)]
        for path in paths:
            with self.subTest(path=path.name):
                self.assertEqual(rules.static_uses(path.read_text(encoding="utf-8")), [], path)

    def test_the_honest_sample_really_uses_what_students_commonly_write(self):
        """So that its passing means something: the imports and idioms it stands for are there."""
        tree = ast.parse((SAMPLES / "honest.py").read_text(encoding="utf-8"))
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        for module in ("os", "sys", "math", "time", "random", "typing", "numpy", "tqdm", "torch.utils.data",
                       "matplotlib.pyplot", "transformers", "json", "argparse", "collections", "dataclasses",
                       "pathlib", "logging", "warnings", "copy", "__future__"):
            self.assertIn(module, imported)
        text = ast.unparse(tree)
        for idiom in ('getattr(self, f"extra_{0}")', "getattr(args, 'lr', 0.001)", "torch.nn.utils.clip_grad_norm_",
                      "nn.functional.softmax", "torch.optim.Adam", "json.dump(vars(args), f)", "vars(args).items()",
                      "self.__class__.__name__", "setattr(self, f'extra_{i}'"):
            self.assertIn(idiom.replace('"', "'"), text.replace('"', "'"))
        main = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main")
        in_main = {a.name for n in ast.walk(main) if isinstance(n, ast.Import) for a in n.names}
        self.assertIn("matplotlib.pyplot", in_main)

    def test_names_in_strings_comments_and_own_classes_are_not_uses(self):
        source = ('"""No nn.RNN here, nor F.scaled_dot_product_attention or exec()."""\nimport torch.nn as nn\n'
                  "# getattr(nn, 'R' + 'NN')\nclass RNN(nn.Module):\n    pass\n\n\nclass RNNCell(nn.Module):\n"
                  "    def __init__(self):\n        super().__init__()\n        self.rnn = RNN()\n"
                  "        self.RNN = self.rnn\n        text = 'torch._C' + \"os.kill\"\n")
        self.assertEqual(rules.static_uses(source), [])

    def test_a_file_that_does_not_parse_gives_none(self):
        self.assertEqual(rules.static_uses("def broken(:\n"), [])
        self.assertEqual(rules.static_uses("x = 1\x00\n"), [])


class HostileFilesTest(unittest.TestCase):
    """Each escape and each forbidden name in the hostile samples is reported at its line."""

    def samples(self):
        return sorted(p for p in SAMPLES.glob("*.py") if p.name not in CLEAN)

    def test_every_hostile_sample_is_reported_where_it_says_and_nowhere_else(self):
        self.assertGreaterEqual(len(self.samples()), 25)
        for path in self.samples():
            source = path.read_text(encoding="utf-8")
            expected = expectations(source)
            with self.subTest(sample=path.name):
                self.assertTrue(expected, f"{path.name} has no '# expect:' line")
                found = by_line(rules.static_uses(source))
                for line, parts in expected.items():
                    labels = [label for label, _ in found.get(line, [])]
                    for part in parts:
                        self.assertTrue(any(part in label for label in labels),
                                        f"{path.name} line {line}: no finding with {part!r} (found {labels})")
                self.assertEqual(sorted(set(found) - set(expected)), [],
                                 f"{path.name}: findings on lines that expect none: "
                                 f"{ {k: v for k, v in found.items() if k not in expected} }")

    def test_each_escape_the_issue_names_is_reported(self):
        """The issue's list, construct by construct (sample, the text of its line, a part of its label)."""
        cases = [
            ("getattr_computed.py", 'getattr(nn, "R" + "NN")', "getattr(torch.nn, a computed name)"),
            ("vars_module.py", 'vars(nn)["RNN"]', "vars() of torch.nn"),
            ("dict_functional.py", 'F.__dict__["scaled_dot_product_attention"]', ".__dict__ of torch.nn.functional"),
            ("aliases.py", "self.a = m.RNN(", "nn.RNN"),
            ("aliases.py", "self.b = q.LSTM(", "nn.LSTM"),
            ("aliases.py", "R = nn.MultiheadAttention", "nn.MultiheadAttention"),
            ("exec_base64.py", "exec(base64.b64decode(", "exec()"),
            ("exec_base64.py", "import base64", "import base64"),
            ("pops_the_mode.py", "torch._C._pop_torch_function_stack()", "torch._C"),
            ("pops_the_mode.py", "torch._C.DisableTorchFunction()", "torch._C"),
            ("aten_sdpa.py", "torch.ops.aten._scaled_dot_product_attention_math.default", "torch.ops"),
            ("aten_sdpa.py", "torch.ops.aten._scaled_dot_product_attention_math.default",
             "F.scaled_dot_product_attention"),
            ("aten_rnn.py", "torch.ops.aten.rnn_relu.input", "torch.ops"),
            ("aten_rnn.py", "torch.ops.aten.rnn_relu.input", "torch.rnn_relu"),
            ("dunder_import.py", '__import__("torch").nn.RNN', "__import__()"),
            ("imports_importlib.py", "import importlib", "import importlib"),
            ("imports_gc.py", "gc.get_objects()", "gc.get_objects"),
            ("imports_ctypes.py", "import ctypes", "import ctypes"),
            ("sys_modules.py", 'sys.modules["torch.nn"]', "sys.modules"),
            ("os_kill.py", "os.kill(os.getppid(), 9)", "os.kill"),
            ("os_fork.py", "os.fork()", "os.fork"),
            ("imports_subprocess.py", "import subprocess", "import subprocess"),
            ("imports_socket.py", "from socket import socket", "from socket import"),
            ("imports_threading.py", "import threading", "import threading"),
            ("not_allowed_import.py", "import requests", "import requests"),
            ("not_allowed_import.py", "from grader import rules", "from grader import"),
            ("torch_internals.py", "nn.Linear.__init__.__wrapped__", ".__wrapped__"),
        ]
        for sample, text, part in cases:
            with self.subTest(sample=sample, text=text):
                source = (SAMPLES / sample).read_text(encoding="utf-8")
                line = next(i for i, l in enumerate(source.splitlines(), 1) if text in l)
                labels = [label for label, at, _ in rules.static_uses(source) if at == line]
                self.assertTrue(any(part in label for label in labels), f"{sample} line {line}: {labels}")

    def test_an_escape_counts_everywhere_and_a_forbidden_name_where_it_is_written(self):
        source = (SAMPLES / "aten_rnn.py").read_text(encoding="utf-8")
        findings = rules.static_uses(source)
        escapes = [f for f in findings if f[0].startswith(rules.ESCAPE)]
        names = [f for f in findings if not f[0].startswith(rules.ESCAPE)]
        self.assertTrue(escapes and names)
        self.assertEqual({owner for _, _, owner in escapes}, {None})
        self.assertEqual({owner for _, _, owner in names}, {"RNN"})
        for label, line, owner in findings:  # the return shape the runner merges
            self.assertIsInstance(label, str)
            self.assertIsInstance(line, int)

    def test_a_forbidden_name_spelled_through_its_internals_is_named_as_itself(self):
        """torch._VF.rnn_tanh is the forbidden function named: one finding, where it is written."""
        self.assertEqual(rules.static_uses("import torch\n\n\ndef f(x):\n    return torch._VF.rnn_tanh(x)\n"),
                         [("torch.rnn_tanh", 5, "f")])

    def test_aliases_anywhere_in_the_file_are_followed(self):
        source = textwrap.dedent("""\
            import torch

            def make():
                return layer(2, 2)

            layer = deeper.RNN
            deeper = alias
            alias = torch.nn
            """)
        self.assertIn(("nn.RNN", 6, None), rules.static_uses(source))
        # a long chain written backwards: followed to its end, not for a fixed number of rounds
        chain = "".join(f"a{i + 1} = a{i}\n" for i in reversed(range(300))) + "a0 = torch\nx = a300.nn.LSTM\n"
        self.assertEqual(rules.static_uses("import torch\n" + chain), [("nn.LSTM", 303, None)])

    def test_a_function_of_the_file_s_own_named_eval_is_not_the_builtin(self):
        self.assertEqual(rules.static_uses((SAMPLES / "own_eval.py").read_text(encoding="utf-8")), [])
        source = (SAMPLES / "builtin_eval_before_def.py").read_text(encoding="utf-8")  # called before the def runs
        self.assertIn((rules.ESCAPE + "eval()", 2, None), rules.static_uses(source))

    def test_the_allow_list_of_modules(self):
        for name in ("torch", "torch.nn", "torch.nn.functional", "torch.optim", "torch.utils.data", "torch.nn.utils",
                     "torch.distributions", "numpy", "numpy.random", "math", "typing", "argparse", "json", "os",
                     "os.path", "sys", "transformers", "tqdm", "tqdm.auto", "matplotlib.pyplot", "collections.abc",
                     "__future__", "kit", "kit.cli", "prepare_data"):
            self.assertTrue(rules.module_allowed(name), name)
        for name in ("torch._C", "torch.ops", "torch._VF", "torch.library", "torch.overrides", "torch.jit",
                     "torch.utils.cpp_extension", "torch._dynamo", "torch.multiprocessing", "gc.x", "ctypes",
                     "importlib", "subprocess", "signal", "socket", "threading", "multiprocessing", "builtins",
                     "marshal", "codecs", "base64", "inspect", "resource", "numpy.ctypeslib", "logging.config",
                     "transformers.dynamic_module_utils", "tqdm.contrib", "grader", "grader.rules", "requests", ""):
            self.assertFalse(rules.module_allowed(name), name)


class MessageTest(unittest.TestCase):
    """rules.message: what a check's failure says, from a list the child fills (untrusted)."""

    def test_the_message_names_each_use_once_with_its_line(self):
        uses = [("nn.RNN", 12), ("nn.RNN (torch.rnn_tanh)", 12), ("nn.RNN", 30), ("F.scaled_dot_product_attention", 5)]
        self.assertEqual(rules.message(uses),
                         "uses nn.RNN (rnn.py line 12) and F.scaled_dot_product_attention (rnn.py line 5), "
                         "which the handout forbids")
        self.assertEqual(rules.message([("nn.RNNCell (torch.rnn_tanh_cell)", 7)]),
                         "uses nn.RNNCell (torch.rnn_tanh_cell, rnn.py line 7), which the handout forbids")

    def test_escapes_are_said_to_be_the_grader_s_not_the_handout_s(self):
        text = rules.message([("nn.RNN", 3), (rules.ESCAPE + "exec()", 5)])
        self.assertTrue(text.startswith("uses nn.RNN (rnn.py line 3), which the handout forbids; it also writes "
                                        "exec() (rnn.py line 5), which the grader does not allow"), text)
        self.assertTrue(rules.message([(rules.ESCAPE + "import gc", 1)]).startswith("writes import gc (rnn.py line 1)"))

    def test_a_hundred_thousand_entries_give_a_short_message_in_one_pass(self):
        n = 100_000
        uses = [(f"nn.RNN{i}", i + 1) for i in range(n)]
        text = rules.message(iter(uses))  # an iterator: read once, or the message would miss them
        self.assertEqual(text, rules.message(uses))
        self.assertEqual(text.count("rnn.py line"), rules.MESSAGE_ITEMS)
        self.assertIn(f"and {n - rules.MESSAGE_ITEMS} more", text)
        self.assertLess(len(text), rules.MESSAGE_ITEMS * (rules.LABEL_CHARS + 30) + 200)
        same = rules.message([("nn.RNN", 4)] * n)
        self.assertEqual(same, "uses nn.RNN (rnn.py line 4), which the handout forbids")

    def test_labels_lose_control_characters_and_are_cut(self):
        text = rules.message([("nn.RNN\n  PASSED\x1b[2J\r\x00\u202e" + "x" * 10_000, 3), ("\x07", "7"),
                              (None, None), ("bad",), 42])
        self.assertFalse(any(ord(c) < 32 or 0x7f <= ord(c) < 0xa0 or c == "\u202e" for c in text), repr(text))
        self.assertNotIn("\n", text)
        self.assertLess(len(text), 400)
        self.assertIn("nn.RNN PASSED", text)
        self.assertIn("...", text)

    def test_entries_it_cannot_read_still_fail_the_check(self):
        self.assertIn("forbids", rules.message([("only one",), 5, None]))


class RunTimeWatchTest(unittest.TestCase):
    """install_hooks in a process of its own (it watches the whole process from then on)."""

    SCRIPT = textwrap.dedent("""\
        import json, sys
        sys.path.insert(0, sys.argv[1])
        import torch
        import torch.nn.functional as F
        from grader import rules
        uses = []
        rules.install_hooks(__file__, lambda label, line: uses.append((label, line)))
        rules.FORBIDDEN_FUNCTIONS.clear(); rules.FORBIDDEN_CLASSES.clear()  # emptied: changes nothing
        q = torch.randn(1, 2, 3, 4); x = torch.randn(3, 4); h = torch.randn(3, 5)
        w_ih, w_hh = torch.randn(5, 4), torch.randn(5, 5)
        torch.bmm(torch.softmax(q[0] @ q[0].transpose(-1, -2), -1), q[0])  # line 11: honest
        torch.ops.aten._scaled_dot_product_attention_math.default(q, q, q)  # line 12
        torch.ops.aten.rnn_relu_cell.default(x, h, w_ih, w_hh)  # line 13
        torch.ops.aten.rnn_tanh_cell(x, h, w_ih, w_hh)  # line 14: the packet, no overload
        torch.ops.aten._scaled_dot_product_flash_attention_for_cpu.default(q, q, q)  # line 15
        torch.ops.aten.lstm_cell.default(x, [h, h], torch.randn(20, 4), torch.randn(20, 5))  # line 16
        F.scaled_dot_product_attention(q, q, q)  # line 17
        torch.nn.RNN(4, 5)  # line 18
        print(json.dumps(uses))
        """)

    def test_aten_overloads_are_known_by_their_base_names(self):
        import torch
        self.assertEqual(rules._base_name(torch.ops.aten.rnn_relu.input), "rnn_relu")
        self.assertEqual(rules._base_name(torch.ops.aten._scaled_dot_product_attention_math.default),
                         "_scaled_dot_product_attention_math")
        self.assertEqual(rules._base_name(torch.ops.aten.rnn_relu_cell), "rnn_relu_cell")
        self.assertEqual(rules._base_name(torch.rnn_tanh), "rnn_tanh")
        for name in ("_scaled_dot_product_attention_math", "_scaled_dot_product_flash_attention_for_cpu",
                     "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention",
                     "_fused_sdp_choice"):
            self.assertEqual(rules.FORBIDDEN_FUNCTIONS[name], rules.FORBIDDEN_FUNCTIONS["scaled_dot_product_attention"])
        for name in ("rnn_relu", "rnn_tanh", "rnn_relu_cell", "rnn_tanh_cell", "lstm", "gru", "lstm_cell", "gru_cell",
                     "_thnn_fused_lstm_cell", "_thnn_fused_gru_cell", "_native_multi_head_attention",
                     "_transformer_encoder_layer_fwd"):
            self.assertIn(name, rules.FORBIDDEN_FUNCTIONS)

    def test_torch_ops_calls_are_recorded_with_their_lines(self):
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "student.py"
            script.write_text(self.SCRIPT, encoding="utf-8")
            run = subprocess.run([sys.executable, str(script), str(REPO)], capture_output=True, text=True,
                                 timeout=300, env={**os.environ, "PYTHONPATH": ""})
        self.assertEqual(run.returncode, 0, run.stderr[-2000:])
        uses = [tuple(u) for u in json.loads(run.stdout.strip().splitlines()[-1])]
        sdpa = "F.scaled_dot_product_attention"
        expected = [(sdpa, 12), ("nn.RNNCell (torch.rnn_relu_cell)", 13), ("nn.RNNCell (torch.rnn_tanh_cell)", 14),
                    (sdpa, 15), ("nn.LSTMCell (torch.lstm_cell)", 16), (sdpa, 17), ("nn.RNN", 18)]
        self.assertEqual(sorted(set(uses)), sorted(expected))  # nothing for line 11's honest attention
        self.assertNotIn(11, {line for _, line in uses})

    GUARD = textwrap.dedent("""\
        import json, os, sys, time
        sys.path.insert(0, sys.argv[1])
        from grader import rules
        folder = sys.argv[2]
        uses = []
        rules.install_hooks(__file__, lambda label, line: uses.append((label, line)))
        sys.path.insert(0, folder)
        import old_module, statistics  # line 8: written before the watch began, and installed: fine
        with open(os.path.join(folder, "new_module.py"), "w") as f:
            f.write("import torch\\nX = torch.nn.RNN(2, 2)\\n")
        try:
            import new_module  # line 12
            print("IMPORTED")
        except ImportError as e:
            print("REFUSED", e)
        with open(os.path.join(folder, "torch_s_own.py"), "w") as f:
            f.write("Y = 2\\n")
        import torch  # torch's own code may (torch 2.5 writes and imports a module of its own)
        exec(compile("import torch_s_own", os.path.join(os.path.dirname(torch.__file__), "x.py"), "exec"))
        print("TORCH", sys.modules["torch_s_own"].Y)
        print(json.dumps(uses))
        """)

    def test_code_written_while_it_runs_is_not_imported(self):
        """A module the file writes and then imports would run code the static check never saw."""
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "old_module.py").write_text("X = 1\n", encoding="utf-8")
            script = Path(tmp) / "student.py"
            script.write_text(self.GUARD, encoding="utf-8")
            run = subprocess.run([sys.executable, str(script), str(REPO), tmp], capture_output=True, text=True,
                                 timeout=300, env={**os.environ, "PYTHONPATH": ""})
        self.assertEqual(run.returncode, 0, run.stderr[-2000:])
        lines = run.stdout.strip().splitlines()
        self.assertTrue(lines[-3].startswith("REFUSED new_module"), lines)
        self.assertEqual(lines[-2], "TORCH 2")
        self.assertEqual([tuple(u) for u in json.loads(lines[-1])],
                         [(rules.ESCAPE + "an import of new_module, written while the grader ran the file", 12)])


if __name__ == "__main__":
    unittest.main()
