"""Hostile: no model of its own; re-exports the grader's reference rnn.py, importable as rnn
wherever the child has the kit's folder on its path, and runs its main as the tiny command."""
from rnn import *  # noqa: F401,F403
import rnn as _reference

if __name__ == "__main__":
    _reference.main()
