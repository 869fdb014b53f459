"""RNNCell: h_t = ReLU(W_i2h i_t + b_i2h + W_h2h h_{t-1} + b_h2h)."""

import torch

from test_cases.helpers import ComponentTest, check_tensor, with_weights


class RNNCellTest(ComponentTest):
    INPUTS = ("sizes", "weights", "input", "hidden_state")

    @staticmethod
    def compute_forward(c, rnn):
        cell = with_weights(rnn, "RNNCell", c)
        with torch.no_grad():
            return cell(c["input"], c["hidden_state"])

    def test_forward(self):
        """forward(input, hidden_state) on set weights"""
        check_tensor("RNNCell.forward output", self.computed(), self.c["expected"])
