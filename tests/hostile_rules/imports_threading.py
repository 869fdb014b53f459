import threading  # expect: import threading
import multiprocessing as mp  # expect: import multiprocessing
import signal  # expect: import signal
import resource  # expect: import resource
import builtins  # expect: import builtins
import marshal  # expect: import marshal
import inspect  # expect: import inspect
