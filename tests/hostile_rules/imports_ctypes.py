import ctypes  # expect: import ctypes

ctypes.string_at(0)
