"""RNNCell: h_t = ReLU(W_i2h i_t + b_i2h + W_h2h h_{t-1} + b_h2h)."""

import unittest

import torch

from test_cases.helpers import case, check_tensor, set_linears, student


class RNNCellTest(unittest.TestCase):
    component = "RNNCell"

    def test_forward(self):
        """forward(input, hidden_state) on set weights"""
        c = case("rnn_cell")
        cell = student().RNNCell(*c["sizes"])
        set_linears(cell, c["weights"], "RNNCell")
        with torch.no_grad():
            check_tensor("RNNCell.forward output", cell(c["input"], c["hidden_state"]), c["expected"])
