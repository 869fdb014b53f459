"""test_runner.py --rnn PATH, the student's tool: the literal completion of the starter passes
every component; deliberate mistakes fail the right components with a useful message; the
stored test data is small, safe to load, and what its script makes."""

import re
import unittest
from concurrent.futures import ThreadPoolExecutor

import torch

from grader import components
from tests.helpers import LITERAL, REPO, TempDirCase, run_script

NUM_COMPONENT_CHECKS = 20

# The three sampling mistakes fail the same checks (the draws) and pass the same ones (argmax, loss).
SAMPLING_VERDICTS = ([("RNNLanguageModel", "select_token(logits (V,), 0.7)"), ("generate", "temperature 0.5")],
                     [("RNNLanguageModel", "is the argmax"), ("generate", "temperature=0"), ("generate", "10 tokens"),
                      ("validate", ""), ("train", "")],
                     "first difference at position")

# The generate-loop mistakes fail the greedy checks, whose tokens are stored (grader/make_test_data.py's
# case_generate requires that each of them returns other greedy tokens), and pass every other component.
# The sampled check is left out of both lists: its draws are torch's own, which differ between versions.
GENERATE_VERDICTS = ([("generate", "temperature=0"), ("generate", "10 tokens")],
                     [("RNNCell", ""), ("RNN", ""), ("SelfAttention", ""), ("RNNLanguageModel", ""), ("validate", ""),
                      ("train", "")])
APPENDED = ("hidden_states = torch.cat([hidden_states, next_hidden.unsqueeze(1)], dim=1)",
            "attn_inputs = torch.cat([attn_inputs, next_attn_input.unsqueeze(1)], dim=1)")

# name: (what a student got wrong, [(text of tests/literal/rnn.py, replacement)], checks that must
# fail (component, words of the check), checks that must pass, a phrase the first failure must hold)
MISTAKES = {
    "no_sqrt": ("the attention score without 1/sqrt(dk)",
                [(" / (self.key_dim ** 0.5)", "")],
                [("SelfAttention", "last of 4"), ("SelfAttention", "forward"), ("RNNLanguageModel", "forward(tokens)")],
                [("SelfAttention", "one position"), ("RNNCell", ""), ("RNN", ""), ("RNNLanguageModel", "select_token")],
                "largest |difference|"),
    "no_shift": ("the loss without the shift",
                 [("logits = token_logits[:, :-1, :]", "logits = token_logits"),
                  ("targets = sequence[:, 1:]", "targets = sequence")],
                 [("validate", ""), ("train", "")],
                 [("RNNCell", ""), ("RNN", ""), ("SelfAttention", ""), ("RNNLanguageModel", ""), ("generate", "")],
                 "expected"),
    "no_clipping": ("train without gradient clipping",
                    [("        torch.nn.utils.clip_grad_norm_(lm.parameters(), max_grad_norm)\n", "")],
                    [("train", "24 sequences"), ("train", "100 sequences"), ("train", "45 sequences"),
                     ("train", "64 sequences")],
                    [("validate", ""), ("RNNLanguageModel", ""), ("generate", "")],
                    "point"),
    "every_batch": ("validate averaging every batch, not reading the first only",
                    [("            if i < num_batches:\n", "            if True:\n"),
                     ("return mean_loss / num_batches", "return mean_loss / (i + 1)")],
                    [("validate", ""), ("train", "24 sequences"), ("train", "100 sequences"),
                     ("train", "45 sequences"), ("train", "64 sequences")],
                    [("RNNLanguageModel", ""), ("generate", ""), ("RNN", ""), ("SelfAttention", "")],
                    "the first batch"),
    "no_temperature": ("sampling from softmax(g), the temperature left out",
                       [("torch.softmax(token_logits / temperature, dim=-1)", "torch.softmax(token_logits, dim=-1)")],
                       *SAMPLING_VERDICTS),
    "inverse_cdf": ("sampling by an inverse-CDF draw of torch.rand instead of torch.multinomial",
                    [("return torch.multinomial(probs, 1)[0]",
                      "return torch.searchsorted(probs.cumsum(-1), torch.rand(1)).clamp(max=probs.numel() - 1)[0]")],
                    *SAMPLING_VERDICTS),
    "top_k": ("sampling among the three most likely tokens only",
              [("return torch.multinomial(probs, 1)[0]",
                "top = torch.topk(probs, 3)\n        return top.indices[torch.multinomial(top.values, 1)[0]]")],
              *SAMPLING_VERDICTS),
    "prepended_states": ("generate putting each new token's states before the prefix's, not after",
                         [(APPENDED[0], "hidden_states = torch.cat([next_hidden.unsqueeze(1), hidden_states], dim=1)"),
                          (APPENDED[1], "attn_inputs = torch.cat([next_attn_input.unsqueeze(1), attn_inputs], dim=1)")],
                         *GENERATE_VERDICTS, "first difference at position"),
    "states_not_appended": ("generate never appending the new states: each token steps from the prefix's",
                            [(f"            {APPENDED[0]}\n", ""),
                             (f"            {APPENDED[1]}\n            attn_output = self.attention.step(attn_inputs)\n",
                              "            attn_output = self.attention.step(torch.cat([attn_inputs, "
                              "next_attn_input.unsqueeze(1)], dim=1))\n")],
                            *GENERATE_VERDICTS, "first difference at position"),
    "hidden_restarted": ("generate restarting the hidden state from None (h = 0) at each new token",
                         [("self.rnn.step(embedding, hidden_states)", "self.rnn.step(embedding)")],
                         *GENERATE_VERDICTS, "first difference at position"),
    "stops_at_end": ("generate stopping at </s> (id 1), which the starter does not",
                     [("            new_tokens.append(next_token)\n",
                       "            new_tokens.append(next_token)\n            if next_token.item() == 1:\n"
                       "                break\n")],
                     *GENERATE_VERDICTS, "got nothing"),
    "no_bias": ("nn.Linear layers with bias=False",
                [(f"nn.Linear({a}, {b})", f"nn.Linear({a}, {b}, bias=False)") for a, b in
                 (("input_dim", "hidden_dim"), ("hidden_dim", "hidden_dim"), ("hidden_dim", "key_dim"),
                  ("hidden_dim", "value_dim"), ("value_dim", "hidden_dim"), ("hidden_dim", "vocab_size"))],
                [("RNNCell", ""), ("RNN", "forward"), ("SelfAttention", "forward"), ("RNNLanguageModel", "10601")],
                [],
                "default bias"),
}


def outcomes(stdout):
    """{'Component: check': None or its message} from the runner's output."""
    result, last = {}, None
    for line in stdout.splitlines():
        m = re.match(r"  (\S.*?)\.+ (PASSED|FAILED)$", line)
        if m:
            last = m.group(1)
            result[last] = None if m.group(2) == "PASSED" else ""
        elif line.startswith("      ") and last is not None:
            result[last] += line.strip()
    return result


def matching(results, component, words):
    return {label: message for label, message in results.items()
            if label.split(":")[0] == component and words in label}


class ComponentRunnerTest(TempDirCase):
    def test_the_literal_completion_passes_every_component(self):
        r = run_script("test_runner.py", "--rnn", LITERAL)
        self.assertEqual(r.returncode, 0, r.stdout[-3000:])
        self.assertIn(f"Passed: {NUM_COMPONENT_CHECKS}/{NUM_COMPONENT_CHECKS}", r.stdout)
        self.assertEqual(r.stdout.strip().splitlines()[-1], f"{NUM_COMPONENT_CHECKS} passed, 0 failed")
        self.assertNotIn("The kit's tests", r.stdout)

    def test_each_deliberate_mistake_fails_the_right_components(self):
        source = LITERAL.read_text(encoding="utf-8")
        paths = {}
        for name, (_, edits, *_) in MISTAKES.items():
            text = source
            for old, new in edits:
                self.assertIn(old, text, f"{name}: the literal completion no longer holds {old!r}")
                text = text.replace(old, new)
            paths[name] = self.tmp / name / "rnn.py"
            paths[name].parent.mkdir()
            paths[name].write_text(text, encoding="utf-8")
        # Two runs at a time, one thread each: two torch processes with a thread per core each
        # oversubscribe OpenMP and can run many times slower than one after the other.
        one_thread = {"OMP_NUM_THREADS": "1"}
        with ThreadPoolExecutor(max_workers=3) as pool:
            runs = dict(zip(paths, pool.map(lambda p: run_script("test_runner.py", "--rnn", p, env=one_thread),
                                            paths.values())))
        for name, (what, _, must_fail, must_pass, phrase) in MISTAKES.items():
            r = runs[name]
            results = outcomes(r.stdout)
            self.assertEqual(r.returncode, 1, f"{what}: {r.stdout[-2000:]}")
            self.assertEqual(len(results), NUM_COMPONENT_CHECKS, f"{what}: {r.stdout[-2000:]}")
            for component, words in must_fail:
                found = matching(results, component, words)
                self.assertTrue(found, f"{what}: no check {component} {words!r}")
                for label, message in found.items():
                    self.assertIsNotNone(message, f"{what}: {label} passed")
            for component, words in must_pass:
                for label, message in matching(results, component, words).items():
                    self.assertIsNone(message, f"{what}: {label} failed: {message}")
            first = next(message for message in results.values() if message is not None)
            self.assertIn(phrase, first, f"{what}: {first}")
        # An attention mistake: what fails downstream says that SelfAttention failed first.
        results = outcomes(runs["no_sqrt"].stdout)
        downstream = {label: message for label, message in results.items()
                      if label.split(":")[0] in ("validate", "train") and message is not None}
        self.assertTrue(downstream, "the attention mistake should change validate's loss too")
        for label, message in downstream.items():
            self.assertIn("which failed above", message, label)
            self.assertIn("fix SelfAttention first", message, label)

    def test_a_file_that_does_not_import_fails_every_component_with_its_reason(self):
        broken = self.tmp / "rnn.py"
        broken.write_text("import torch\nclass RNNCell(torch.nn.Module:\n    pass\n", encoding="utf-8")
        r = run_script("test_runner.py", "--rnn", broken)
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"cannot import {broken}: SyntaxError", r.stdout)
        self.assertEqual(r.stdout.strip().splitlines()[-1], f"0 passed, {NUM_COMPONENT_CHECKS} failed")

    def test_a_missing_file_is_a_one_line_error(self):
        r = run_script("test_runner.py", "--rnn", self.tmp / "nope.py")
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stderr.strip().splitlines(), [f"test_runner.py: error: --rnn {self.tmp / 'nope.py'}: no such file"])


class TestDataTest(unittest.TestCase):
    def test_small_and_loadable_with_torch_loads_safe_default(self):
        files = sorted((REPO / "test_data").glob("*.pt"))
        self.assertEqual([p.stem for p in files], sorted(c.case for c in components.CHECKED))
        self.assertEqual(len(files), 7)
        self.assertLess(sum(p.stat().st_size for p in files), 1_000_000)
        for path in files:
            self.assertIsInstance(torch.load(path, weights_only=True), dict)

    def test_the_script_regenerates_them_value_for_value_on_the_portable_cpu_kernels_too(self):
        # Older CPUs and ARM machines take other kernels, which change the last bits of the weights:
        # remade on those (the stored files were made on this machine's), they agree all the same.
        r = run_script("grader/make_test_data.py", "--check", env={"ATEN_CPU_CAPABILITY": "default"})
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr[-2000:])
        self.assertEqual(r.stdout.count(": the same"), len(components.CHECKED) + 1, r.stdout)  # and tiny_reference
        self.assertIn("tiny_reference.json: the same as data/tiny_*.txt", r.stdout)
