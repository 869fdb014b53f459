import numpy as np
import torch
from transformers import AutoTokenizer

tok = AutoTokenizer.from_pretrained(".", trust_remote_code=True)  # expect: trust_remote_code=
arr = np.load("x.npy", allow_pickle=True)  # expect: allow_pickle=
state = torch.load("x.pt", pickle_module=np)  # expect: pickle_module= | the module numpy used as a value
