"""validate: the starter's reads the first batch only, so its value is that batch's mean loss.

It runs on the grader's stand-in model (test_cases/stand_ins.py), so it measures validate alone."""

import torch.nn as nn

from test_cases.helpers import ComponentTest, check_losses
from test_cases.stand_ins import stand_in_lm


class ValidateTest(ComponentTest):
    INPUTS = ("sizes", "state", "batches")

    @staticmethod
    def compute_validate(c, rnn):
        return rnn.validate(stand_in_lm(c["sizes"], c["state"]), c["batches"], nn.CrossEntropyLoss())

    def test_validate(self):
        """validate(lm, three batches, CrossEntropyLoss): the first batch's loss"""
        check_losses("validate(lm, three batches, CrossEntropyLoss)", [self.computed()], [self.c["expected"]])
