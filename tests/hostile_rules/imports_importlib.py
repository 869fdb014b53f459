import importlib  # expect: import importlib

nn = importlib.import_module("torch.nn")
