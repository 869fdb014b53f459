"""Hostile, as a program: trains nothing; links the three output files the tiny command names
to the kit's reference copies (@DATA@/tiny_*.txt), so that a grader reading through links
would find the reference there."""
import os
import sys

args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
for flag, name in (("--train_losses_out", "tiny_train_losses.txt"), ("--val_losses_out", "tiny_val_losses.txt"),
                   ("--metrics_out", "tiny_metrics.txt")):
    os.symlink(os.path.join("@DATA@", name), args[flag])
