import os
from os import system  # expect: os.system

if os.fork() == 0:  # expect: os.fork
    os.execv("/bin/sh", ["sh"])  # expect: os.execv
