import torch

torch._C._pop_torch_function_stack()  # expect: torch._C
with torch._C.DisableTorchFunction():  # expect: torch._C
    pass
