"""A hostile rnn.py for the program check: it trains nothing and writes the tiny command's
published points (the handout's tiny_metrics.txt, the kit's data/tiny_*.txt) into the three
files the command names. It passes the check on the committed tiny data and must fail it on
fresh data (test_runner.py --fresh SEED), whose points are published nowhere."""

import argparse

TRAIN_LOSSES = [6.936321, 6.786825, 6.295729, 5.8373, 5.704857, 5.785788, 5.708823, 5.5664, 5.672427, 5.676678, 5.566572]
VAL_LOSSES = [6.922616, 6.243799, 5.50972, 5.430648, 5.264433, 5.37993, 5.209821, 5.147429, 5.160937, 5.031228, 4.965139]

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    for flag in ("--train_losses_out", "--val_losses_out", "--metrics_out"):
        parser.add_argument(flag)
    args, _ = parser.parse_known_args()
    with open(args.train_losses_out, "w") as f:
        f.write("".join(f"{x}\n" for x in TRAIN_LOSSES))
    with open(args.val_losses_out, "w") as f:
        f.write("".join(f"{x}\n" for x in VAL_LOSSES))
    with open(args.metrics_out, "w") as f:
        f.write(f"Final Train Loss: {TRAIN_LOSSES[-1]}\nFinal Valid Loss: {VAL_LOSSES[-1]}\n")
