"""validate: the mean over batches of each batch's mean loss, under no_grad."""

import unittest

import torch.nn as nn

from test_cases.helpers import case, check_losses, student, student_lm


class ValidateTest(unittest.TestCase):
    component = "validate"

    def test_validate(self):
        """validate(lm, batches of 3, 3 and 1 sequences, CrossEntropyLoss)"""
        c = case("validate")
        lm = student_lm(c["sizes"], c["state"])
        value = student().validate(lm, c["batches"], nn.CrossEntropyLoss())
        check_losses("validate (the mean of the three batches' losses; targets shifted by one)", [value],
                     [c["expected"]])
