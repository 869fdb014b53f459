"""Every mistake the checker names is caught and named: a one-mistake completion for each entry of
grader/mistakes.py's tables (an edit of tests/literal/rnn.py, or of tests/vectorised/rnn.py where
only a vectorised attention can make it) fails, is named by its ``likely mistake:`` line on one
check at least (a check whose output another mistake would explain as well names none), gets
no other mistake's line anywhere, and, a mistake in the model (RNNCell, RNN, SelfAttention),
fails no validate, train or generate check. Correct completions (the literal one, the
vectorised one, the kit's rnn.py) fail nothing, so get no line. The same on fresh cases. The
checks run here in-process (compute, then judge): the child processes and the sandbox are
tests/test_grader.py's and tests/test_hostile.py's."""

import unittest

import torch

from grader import diagnose, make_test_data, mistakes, under_test
from tests.helpers import LITERAL, REPO, TempDirCase

VECTORISED = REPO / "tests" / "vectorised" / "rnn.py"
LINES = {m.key: m.line for table in mistakes.TABLES.values() for m in table}
# select_token's sampling mistakes are named on generate's sampled check too, in generate's words.
ALSO_NAMED = {"temperature_ignored": "generate_temperature_ignored",
              "temperature_multiplied": "generate_temperature_multiplied", "argmax_always": "generate_argmax"}
MODEL = ("RNNCell", "RNN", "SelfAttention")
STAND_INS = ("validate", "train", "generate")

APPENDED = ("hidden_states = torch.cat([hidden_states, next_hidden.unsqueeze(1)], dim=1)",
            "attn_inputs = torch.cat([attn_inputs, next_attn_input.unsqueeze(1)], dim=1)")
CLIP = "        torch.nn.utils.clip_grad_norm_(lm.parameters(), max_grad_norm)\n"
INIT = ("        self.embeddings = nn.Embedding(vocab_size, embed_dim)\n"
        "        self.rnn = RNN(embed_dim, hidden_dim)\n"
        "        self.attention = SelfAttention(hidden_dim, key_dim, value_dim)\n"
        "        self.lm_head = nn.Linear(hidden_dim, vocab_size)\n")
LAYERS = ("        self.query_transform = nn.Linear(hidden_dim, key_dim)\n"
          "        self.key_transform = nn.Linear(hidden_dim, key_dim)\n")
MASKED = 'weights = torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)'
SAMPLE = "probs = torch.softmax(token_logits / temperature, dim=-1)"

# The mistake's key in grader/mistakes.py: the file's name, but for these.
KEYS = {"lm_head_first": "order lm_head,embeddings,rnn,attention",
        "key_before_query": "order key_transform,query_transform,value_transform,output_transform",
        "clip_after_step": "no_clip"}
# file name: (the completion it edits, [(text, replacement)]); each replacement is made wherever the
# text occurs (the loss is written twice, in validate and train).
ONE_MISTAKE = {
    "tanh": (LITERAL, [("nn.ReLU()", "nn.Tanh()")]),
    "no_activation": (LITERAL, [("return self.activation(self.i2h(input) + self.h2h(hidden_state))",
                                 "return self.i2h(input) + self.h2h(hidden_state)")]),
    "no_i2h_bias": (LITERAL, [("self.activation(self.i2h(input) +",
                               "self.activation(input @ self.i2h.weight.T +")]),
    "no_h2h_bias": (LITERAL, [("self.h2h(hidden_state))", "hidden_state @ self.h2h.weight.T)")]),
    "i2h_bias_twice": (LITERAL, [("self.activation(self.i2h(input) +",
                                  "self.activation(self.i2h(input) + self.i2h.bias +")]),
    "h2h_bias_twice": (LITERAL, [("self.h2h(hidden_state))",
                                  "self.h2h(hidden_state) + self.h2h.bias)")]),
    "not_carried": (LITERAL, [("prev = hidden_prev[:, -1, :]",
                               "prev = torch.zeros_like(hidden_prev[:, -1, :])")]),
    "first_state": (LITERAL, [("prev = hidden_prev[:, -1, :]", "prev = hidden_prev[:, 0, :]")]),
    "no_out": (LITERAL, [("next_output = self.out(next_hidden)", "next_output = next_hidden")]),
    "no_scale": (LITERAL, [(" / (self.key_dim ** 0.5)", "")]),
    "scale_dk": (LITERAL, [(" / (self.key_dim ** 0.5)", " / self.key_dim")]),
    "scale_hidden": (LITERAL, [(" / (self.key_dim ** 0.5)", " / (self.hidden_dim ** 0.5)")]),
    "scale_value": (LITERAL, [(" / (self.key_dim ** 0.5)", " / (self.value_dim ** 0.5)")]),
    "softmax_batch": (LITERAL, [("torch.softmax(scores, dim=1)", "torch.softmax(scores, dim=0)")]),
    "query_first": (LITERAL, [("self.query_transform(y_all[:, -1, :])",
                               "self.query_transform(y_all[:, 0, :])")]),
    "no_mask": (VECTORISED, [(MASKED, "weights = torch.softmax(scores, dim=-1)")]),
    "softmax_query": (VECTORISED, [(MASKED, MASKED.replace("dim=-1", "dim=1"))]),
    "attention_skipped": (LITERAL, [("token_logits = self.lm_head(attn_outputs)",
                                     "token_logits = self.lm_head(attn_inputs)")]),
    "head_hidden": (LITERAL, [("token_logits = self.lm_head(attn_outputs)",
                               "token_logits = self.lm_head(hidden_states)")]),
    "attend_hidden": (LITERAL, [("attn_outputs = self.attention(attn_inputs)",
                                 "attn_outputs = self.attention(hidden_states)")]),
    "swapped_states": (LITERAL, [("return token_logits, hidden_states, attn_inputs",
                                  "return token_logits, attn_inputs, hidden_states")]),
    "lm_head_first": (LITERAL, [(INIT, INIT.splitlines(True)[3] + "".join(INIT.splitlines(True)[:3]))]),
    "key_before_query": (LITERAL, [(LAYERS, "".join(reversed(LAYERS.splitlines(True))))]),
    "temperature_ignored": (LITERAL, [(SAMPLE, "probs = torch.softmax(token_logits, dim=-1)")]),
    "temperature_multiplied": (LITERAL, [(SAMPLE, "probs = torch.softmax(token_logits * temperature, dim=-1)")]),
    "argmax_always": (LITERAL, [("if temperature == 0:", "if True:")]),
    "no_softmax": (LITERAL, [(SAMPLE, "probs = token_logits / temperature")]),
    "generate_argmax": (LITERAL, [
        ("self.select_token(token_logits[0, -1, :], temperature)", "self.select_token(token_logits[0, -1, :], 0.0)"),
        ("self.select_token(token_logits[0], temperature)", "self.select_token(token_logits[0], 0.0)")]),
    "every_batch": (LITERAL, [("            if i < num_batches:\n", "            if True:\n"),
                              ("return mean_loss / num_batches", "return mean_loss / (i + 1)")]),
    "no_shift": (LITERAL, [("logits = token_logits[:, :-1, :]", "logits = token_logits"),
                           ("targets = sequence[:, 1:]", "targets = sequence")]),
    "back_shift": (LITERAL, [("logits = token_logits[:, :-1, :]", "logits = token_logits[:, 1:, :]"),
                             ("targets = sequence[:, 1:]", "targets = sequence[:, :-1]")]),
    "no_zero_grad": (LITERAL, [("        optimizer.zero_grad()\n", "")]),
    "no_clip": (LITERAL, [(CLIP, "")]),
    "clip_after_step": (LITERAL, [(CLIP + "        optimizer.step()\n", "        optimizer.step()\n" + CLIP)]),
    "summed": (LITERAL, [("round(train_batch_loss / val_index, 6)", "round(train_batch_loss, 6)")]),
    "first_divided": (LITERAL, [("if idx == 0:", "if False:")]),
    "one_batch_more": (LITERAL, [("if idx >= num_sequences // batch_size:",
                                  "if idx > num_sequences // batch_size:")]),
    "prepended": (LITERAL, [
        (APPENDED[0], "hidden_states = torch.cat([next_hidden.unsqueeze(1), hidden_states], dim=1)"),
        (APPENDED[1], "attn_inputs = torch.cat([next_attn_input.unsqueeze(1), attn_inputs], dim=1)")]),
    "not_kept": (LITERAL, [
        (f"            {APPENDED[0]}\n", ""),
        (f"            {APPENDED[1]}\n            attn_output = self.attention.step(attn_inputs)\n",
         "            attn_output = self.attention.step(torch.cat([attn_inputs, next_attn_input.unsqueeze(1)], dim=1))\n")]),
    "not_appended": (LITERAL, [(f"            {APPENDED[0]}\n", ""), (f"            {APPENDED[1]}\n", "")]),
    "restarted": (LITERAL, [("self.rnn.step(embedding, hidden_states)", "self.rnn.step(embedding)")]),
    "stops_at_end": (LITERAL, [
        ("            new_tokens.append(next_token)\n",
         "            new_tokens.append(next_token)\n            if next_token.item() == 1:\n                break\n")]),
    "one_token_more": (LITERAL, [("for _ in range(max_tokens - 1):", "for _ in range(max_tokens):")]),
    "one_token_less": (LITERAL, [("for _ in range(max_tokens - 1):",
                                  "for _ in range(max_tokens - 2):")]),
}
# The few made again on fresh cases: one or two of each component's.
ON_FRESH = ("tanh", "not_carried", "no_scale", "no_mask", "attention_skipped", "lm_head_first", "temperature_multiplied",
            "every_batch", "no_clip", "summed", "prepended", "stops_at_end")


def grade_here(path, cases):
    """{(component, check): (None or the failure, None or the likely-mistake line)} for the rnn.py at
    ``path``: each check's compute step and its judgement, in this process."""
    from test_runner import component_tests
    under_test.set_rnn_path(path)
    try:
        student = under_test.student()
        verdicts = {}
        for test in component_tests([]):
            case = cases[test.case_name]
            try:
                value = type(test).compute_for(test._testMethodName)(type(test).inputs(case), student)
            except Exception as e:  # noqa: BLE001  (a failure the child would report)
                verdicts[test.component, test._testMethodName] = (f"{type(e).__name__}: {e}", None)
                continue
            message = diagnose.verdict(test, case, value)
            line = diagnose.likely_mistake(test, case, value) if message is not None else None
            verdicts[test.component, test._testMethodName] = (message, line)
        kept = diagnose.upheld([(component, message, line) for (component, _), (message, line) in verdicts.items()])
        return {check: (message, line) for (check, (message, _)), line in zip(verdicts.items(), kept)}
    finally:
        under_test.set_rnn_path(under_test.DEFAULT_RNN)


def key_of(name):
    """The key in grader/mistakes.py of the mistake that one-mistake completion ``name`` makes."""
    return KEYS.get(name, name)


def one_mistake_file(folder, name):
    base, edits = ONE_MISTAKE[name]
    text = base.read_text(encoding="utf-8")
    for old, new in edits:
        assert old in text, f"{name}: {base.name} no longer holds {old!r}"
        text = text.replace(old, new)
    path = folder / name / "rnn.py"
    path.parent.mkdir()
    path.write_text(text, encoding="utf-8")
    return path


class MistakesTest(TempDirCase):
    def setUp(self):
        super().setUp()
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # as a child computes
        self.addCleanup(torch.set_num_threads, threads)

    def assertNamed(self, name, verdicts, where):
        key = key_of(name)
        line = LINES[key]
        allowed = (None, line, LINES.get(ALSO_NAMED.get(key)))
        failing = {check: v for check, v in verdicts.items() if v[0] is not None}
        self.assertTrue(failing, f"{where}: {name} passes every check")
        for (component, method), (message, named) in failing.items():
            self.assertIn(named, allowed, f"{where}: {name}: {component} {method} names another mistake")
        self.assertTrue(any(named == line for _, named in failing.values()), f"{where}: {name} is never named")
        if any(key == m.key for component in MODEL for m in mistakes.TABLES[component]):
            wrong = [check for check in failing if check[0] in STAND_INS]
            self.assertEqual(wrong, [], f"{where}: {name}, a model mistake, fails checks of the stand-ins")

    def test_every_table_entry_but_the_orders_has_a_one_mistake_completion(self):
        keys = {key_of(name) for name in ONE_MISTAKE}
        keys |= {ALSO_NAMED[key] for key in keys if key in ALSO_NAMED}
        for table in mistakes.TABLES.values():
            for m in table:
                if not m.key.startswith("order "):  # two of the 46 orders have theirs
                    self.assertIn(m.key, keys)

    def test_correct_completions_fail_nothing_and_so_get_no_line(self):
        cases = {c: under_test.stored_case(c) for c in make_test_data.CASES}
        for path in (LITERAL, VECTORISED, REPO / "rnn.py"):
            verdicts = grade_here(path, cases)
            self.assertEqual(len(verdicts), 20)
            self.assertEqual({check: v for check, v in verdicts.items() if v != (None, None)}, {}, path)

    def test_each_mistake_is_caught_and_named_on_the_stored_cases(self):
        cases = {c: under_test.stored_case(c) for c in make_test_data.CASES}
        for name in ONE_MISTAKE:
            with self.subTest(name):
                self.assertNamed(name, grade_here(one_mistake_file(self.tmp, name), cases), "stored")

    def test_the_same_on_fresh_cases(self):
        for seed in (3, 11):
            cases = make_test_data.fresh_cases(seed)
            for path in (LITERAL, VECTORISED):
                self.assertEqual({c: v for c, v in grade_here(path, cases).items() if v != (None, None)}, {})
            folder = self.tmp / f"seed{seed}"
            folder.mkdir()
            for name in ON_FRESH:
                with self.subTest(name, seed=seed):
                    self.assertNamed(name, grade_here(one_mistake_file(folder, name), cases), f"fresh seed {seed}")


if __name__ == "__main__":
    unittest.main()
