from socket import socket  # expect: from socket import


def main():
    socket().connect(("localhost", 1))
