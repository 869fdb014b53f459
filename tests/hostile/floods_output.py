"""Hostile: prints 200 MB at import (the runner must neither hold it nor hang on it)."""
import sys

line = "\x1b[31m" + "x" * (2**20) + "\n"
for _ in range(200):
    sys.stdout.write(line)
