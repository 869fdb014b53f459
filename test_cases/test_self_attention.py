"""SelfAttention: a_t = W_o sum_n softmax(k_n . q_t / sqrt(D_key)) v_n, over positions n <= t."""

import unittest

import torch

from test_cases.helpers import case, check_tensor, set_linears, student


class SelfAttentionTest(unittest.TestCase):
    component = "SelfAttention"

    def setUp(self):
        self.c = case("self_attention")
        self.attention = student().SelfAttention(*self.c["sizes"])
        set_linears(self.attention, self.c["weights"], "SelfAttention")

    def test_step(self):
        """step(y_all) for the last of 4 positions"""
        with torch.no_grad():
            check_tensor("SelfAttention.step(y_all[:, :4])", self.attention.step(self.c["y_all"][:, :4]),
                         self.c["step_4"])

    def test_step_first_position(self):
        """step(y_all) with one position: it attends to itself alone"""
        with torch.no_grad():
            check_tensor("SelfAttention.step(y_all[:, :1])", self.attention.step(self.c["y_all"][:, :1]),
                         self.c["step_1"])

    def test_forward(self):
        """forward(y_all): every position, each seeing itself and the earlier ones"""
        with torch.no_grad():
            check_tensor("SelfAttention.forward(y_all)", self.attention(self.c["y_all"]), self.c["forward"])
