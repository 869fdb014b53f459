import sys

RNN = sys.modules["torch.nn"].RNN  # expect: sys.modules
frame = sys._getframe(1)  # expect: sys._getframe
