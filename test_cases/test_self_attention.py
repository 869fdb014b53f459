"""SelfAttention: a_t = W_o sum_n softmax(k_n . q_t / sqrt(D_key)) v_n, over positions n <= t."""

import torch

from test_cases.helpers import ComponentTest, check_tensor, with_weights


def attention(c, rnn):
    return with_weights(rnn, "SelfAttention", c)


class SelfAttentionTest(ComponentTest):
    INPUTS = ("sizes", "weights", "y_all")

    @staticmethod
    def compute_step(c, rnn):
        with torch.no_grad():
            return attention(c, rnn).step(c["y_all"][:, :4])

    def test_step(self):
        """step(y_all) for the last of 4 positions"""
        check_tensor("SelfAttention.step(y_all[:, :4])", self.computed(), self.c["step_4"])

    @staticmethod
    def compute_step_first_position(c, rnn):
        with torch.no_grad():
            return attention(c, rnn).step(c["y_all"][:, :1])

    def test_step_first_position(self):
        """step(y_all) with one position: it attends to itself alone"""
        check_tensor("SelfAttention.step(y_all[:, :1])", self.computed(), self.c["step_1"])

    @staticmethod
    def compute_forward(c, rnn):
        with torch.no_grad():
            return attention(c, rnn)(c["y_all"])

    def test_forward(self):
        """forward(y_all): every position, each seeing itself and the earlier ones"""
        check_tensor("SelfAttention.forward(y_all)", self.computed(), self.c["forward"])
