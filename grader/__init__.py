"""The grader: what runs a student's rnn.py through the component checks (test_cases/) and
grades it, apart from the checks themselves.

    components    the one registry: each component, its checks' module, what they run, its points
    under_test    the rnn.py under test, the cases the checks run on, what the children computed
    isolation     child processes, time- and memory-limited; child.py is what runs in them
    rules         the homework's rule (no nn.RNN, nn.MultiheadAttention, ...), at run time and statically
    tiny_program  the file run as the handout's tiny command, compared with the kit's run
    gradescope    results.json and the points file
    mistakes      the mistakes the checks can name: one table per component, each its line and how to compute it
    diagnose      a failed check's "likely mistake:" line, from those tables, never a guess
    make_test_data  test_data/ and data/tiny_reference.json, and the fresh cases of --fresh

Nothing here imports test_runner.py; test_runner.py drives it.
"""
