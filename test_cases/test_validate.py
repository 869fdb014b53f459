"""validate: the starter's reads the first batch only, so its value is that batch's mean loss."""

import torch.nn as nn

from test_cases.helpers import ComponentTest, check_losses, student_lm


class ValidateTest(ComponentTest):
    INPUTS = ("sizes", "state", "batches")

    @staticmethod
    def compute_validate(c, rnn):
        lm = student_lm(rnn, c["sizes"], c["state"])
        return rnn.validate(lm, c["batches"], nn.CrossEntropyLoss())

    def test_validate(self):
        """validate(lm, three batches, CrossEntropyLoss): the first batch's loss"""
        check_losses("validate (the starter's reads the first batch only: its loss, targets shifted by one)",
                     [self.computed()], [self.c["expected"]])
