import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.jit  # expect: import torch.jit
from torch.library import Library  # expect: from torch.library import
from torch.overrides import TorchFunctionMode  # expect: from torch.overrides import
from torch.utils import cpp_extension  # expect: torch.utils.cpp_extension
from torch.nn.attention import sdpa_kernel  # expect: F.scaled_dot_product_attention (torch.nn.attention)

sys_of_torch = torch.sys.modules  # expect: sys.modules (as torch.sys.modules)
ops_again = F.torch.ops  # expect: torch.ops (as F.torch.ops)
vf = torch._VF  # expect: torch._VF
subclasses = nn.Module.__subclasses__()  # expect: .__subclasses__
init = nn.Linear.__init__.__wrapped__  # expect: .__wrapped__
