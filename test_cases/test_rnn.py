"""RNN: step (from zeros, from the preceding hidden states) and forward.

The starter's RNN.step is given None or the preceding hidden states (B, t-1, H), never the
last state alone: the kit's step accepts (B, H) too, and tests/ checks that, not this."""

import torch

from test_cases.helpers import ComponentTest, check_tensor, with_weights


def model(c, rnn):
    return with_weights(rnn, "RNN", c)


class RNNTest(ComponentTest):
    INPUTS = ("sizes", "weights", "sequence", "prefix_states")

    def check_step(self, what, result, expected):
        self.assertIsInstance(result, tuple, f"{what} should return (hidden state, output state)")
        self.assertEqual(len(result), 2, f"{what} should return (hidden state, output state)")
        check_tensor(f"{what}: hidden state h_t", result[0], expected[0])
        check_tensor(f"{what}: output state y_t", result[1], expected[1])

    @staticmethod
    def compute_step_first(c, rnn):
        with torch.no_grad():
            return model(c, rnn).step(c["sequence"][:, 0], None)

    def test_step_first(self):
        """step(input) with no hidden states: h_0 is zeros"""
        self.check_step("RNN.step(input, None)", self.computed(), self.c["step_first"])

    @staticmethod
    def compute_step_from_states(c, rnn):
        with torch.no_grad():
            return model(c, rnn).step(c["sequence"][:, 3], c["prefix_states"])

    def test_step_from_states(self):
        """step(input, preceding hidden states (B, t-1, H))"""
        self.check_step("RNN.step(input, hidden states (B, 3, H))", self.computed(), self.c["step_from_states"])

    @staticmethod
    def compute_forward(c, rnn):
        with torch.no_grad():
            return model(c, rnn)(c["sequence"])

    def test_forward(self):
        """forward(sequence) -> hidden states, output states"""
        result = self.computed()
        self.assertEqual(len(result), 2, "RNN.forward should return (hidden_states, output_states)")
        check_tensor("RNN.forward hidden_states", result[0], self.c["hidden_states"])
        check_tensor("RNN.forward output_states", result[1], self.c["output_states"])
