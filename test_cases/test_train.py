"""train: the starter's loop (clipping, loss points every val_index batches, validation on the
first validation batch)."""

import unittest

import torch
import torch.nn as nn

from test_cases.helpers import case, check_losses, check_tensor, student, student_lm


# k_n . q_t + b_k . q_t: the key bias adds the same amount to every score of a position,
# which softmax ignores, so its gradient is zero in exact arithmetic. Adam divides that zero's
# rounding noise (about 1e-9) by its own running size and moves the bias by about lr a step,
# in a direction set by summation order: two correct implementations end with different key
# biases and identical outputs. Every other trained weight is compared.
NOT_DEFINED_BY_THE_EQUATIONS = "attention.key_transform.bias"


class TrainTest(unittest.TestCase):
    component = "train"

    def run_case(self, index):
        c = case("train")
        run = c["runs"][index]
        lm = student_lm(c["sizes"], c["state"])
        optimizer = torch.optim.Adam(lm.parameters(), lr=c["lr"])
        what = f"train(num_sequences={run['num_sequences']}, batch_size={run['batch_size']})"
        result = student().train(lm, run["train_batches"], run["valid_batches"], nn.CrossEntropyLoss(), optimizer,
                                 run["num_sequences"], run["batch_size"])
        self.assertEqual(len(result), 2, f"{what} should return (train_losses, valid_losses)")
        check_losses(f"{what} training losses", result[0], run["train_losses"])
        check_losses(f"{what} validation losses", result[1], run["valid_losses"])
        state = lm.state_dict()
        for name, value in run["final_state"].items():
            if name == NOT_DEFINED_BY_THE_EQUATIONS:
                continue
            check_tensor(f"{what}: weight {name} after training (gradient clipping at 1.0?)", state[name], value)

    def test_every_batch(self):
        """train(24 sequences, batch 2): val_index 1, a point after every batch"""
        self.run_case(0)

    def test_every_fifth_batch(self):
        """train(100 sequences, batch 2): val_index 5"""
        self.run_case(1)

    def test_batch_of_four(self):
        """train(45 sequences, batch 4): val_index 1, 11 batches"""
        self.run_case(2)

    def test_batch_of_three(self):
        """train(64 sequences, batch 3): val_index 2"""
        self.run_case(3)
