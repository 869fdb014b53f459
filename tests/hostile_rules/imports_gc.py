import gc

gc.collect()  # an honest student frees memory: fine
found = [o for o in gc.get_objects() if type(o).__name__ == "RNN"]  # expect: gc.get_objects
referrers = gc.get_referrers  # expect: gc.get_referrers
