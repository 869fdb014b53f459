from torch.nn import *  # expect: from torch.nn import *
from . import helpers  # expect: a relative import
from os import *  # expect: from os import *
