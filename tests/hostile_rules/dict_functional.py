import torch.nn.functional as F


def attend(q, k, v):
    return F.__dict__["scaled_dot_product_attention"](q, k, v)  # expect: .__dict__ of torch.nn.functional
