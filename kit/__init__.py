"""The kit's machinery, apart from the starter's code in rnn.py.

    files       paths, InputError, atomic writes
    cli         the one-line argument parser, number types, the device, Ctrl-C
    data        reading and checking the prepared data, the tokenizer, the loader
    checkpoint  the checkpoint format: a plain dict, loaded with weights_only
    runs        a training run's outputs, run folder, resume, saves and finish
    tiny        the handout's tiny command and the one comparison with its reference

No module here imports rnn: rnn.py imports the kit, never the other way round.
"""
