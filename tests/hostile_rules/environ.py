import os

os.environ["TOKENIZERS_PARALLELISM"] = "false"  # what students set: fine
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # fine
print(os.environ.get("HOME"), "HOME" in os.environ, os.environ["HOME"])  # reading it: fine
os.environ["PATH"] = "/tmp/bin"  # expect: os.environ['PATH'] = ...
os.environ.update(CXX="/tmp/cc")  # expect: os.environ.update()
env = os.environ
env["LD_PRELOAD"] = "/tmp/x.so"  # expect: os.environ['LD_PRELOAD'] = ...
os.putenv("PYTHONPATH", "/tmp")  # expect: os.putenv


def poke(e):
    e["PATH"] = "/tmp"


poke(os.environ)  # expect: os.environ used as a value
import matplotlib.animation  # expect: import matplotlib.animation
