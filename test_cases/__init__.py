"""Component tests: each piece of an rnn.py (the kit's, or a student's with --rnn PATH)
against stored reference outputs in test_data/, through the handout's starter interface only.
One module per component (grader/components.py names them); helpers.py is what they share."""
