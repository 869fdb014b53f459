"""RNN: step (from zeros, from the preceding hidden states) and forward.

The starter's RNN.step is given None or the preceding hidden states (B, t-1, H), never the
last state alone: the kit's step accepts (B, H) too, and tests/ checks that, not this."""

import unittest

import torch

from test_cases.helpers import case, check_tensor, set_linears, student


class RNNTest(unittest.TestCase):
    component = "RNN"

    def setUp(self):
        self.c = case("rnn")
        self.model = student().RNN(*self.c["sizes"])
        set_linears(self.model, self.c["weights"], "RNN")

    def check_step(self, what, result, expected):
        self.assertIsInstance(result, tuple, f"{what} should return (hidden state, output state)")
        self.assertEqual(len(result), 2, f"{what} should return (hidden state, output state)")
        check_tensor(f"{what}: hidden state h_t", result[0], expected[0])
        check_tensor(f"{what}: output state y_t", result[1], expected[1])

    def test_step_first(self):
        """step(input) with no hidden states: h_0 is zeros"""
        with torch.no_grad():
            self.check_step("RNN.step(input, None)", self.model.step(self.c["sequence"][:, 0], None),
                            self.c["step_first"])

    def test_step_from_states(self):
        """step(input, preceding hidden states (B, t-1, H))"""
        with torch.no_grad():
            self.check_step("RNN.step(input, hidden states (B, 3, H))",
                            self.model.step(self.c["sequence"][:, 3], self.c["hidden_states"][:, :3]),
                            self.c["step_from_states"])

    def test_forward(self):
        """forward(sequence) -> hidden states, output states"""
        with torch.no_grad():
            result = self.model(self.c["sequence"])
        self.assertEqual(len(result), 2, "RNN.forward should return (hidden_states, output_states)")
        check_tensor("RNN.forward hidden_states", result[0], self.c["hidden_states"])
        check_tensor("RNN.forward output_states", result[1], self.c["output_states"])
