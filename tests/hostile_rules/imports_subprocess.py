import subprocess  # expect: import subprocess

subprocess.run(["true"])
