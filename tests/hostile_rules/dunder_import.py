def build(input_dim, hidden_dim):
    return __import__("torch").nn.RNN(input_dim, hidden_dim)  # expect: __import__()
