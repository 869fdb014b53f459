import requests  # expect: import requests
from grader import rules  # expect: from grader import


def main():
    import pandas as pd  # expect: import pandas
