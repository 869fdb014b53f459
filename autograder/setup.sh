#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image (its Ubuntu base
# image), from the unzipped autograder in /autograder/source. It installs the course's
# environment -- requirements.txt: torch 2.5.1 (the CPU build), transformers 4.44.0, numpy
# 2.2.4 -- in a virtual environment, $AUTOGRADER_ROOT/venv, which run_autograder uses, and the
# sandbox user that runs the student's code.
set -euo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
cd "$(dirname "$0")"
if ! python3 -c 'import sys, venv; sys.exit(sys.version_info < (3, 9))' 2>/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv python3-pip
fi
python3 -m venv "$ROOT/venv"
"$ROOT/venv/bin/python" -m pip install --quiet --upgrade pip
# The CPU build of torch first (the default one brings 3 GB of CUDA libraries Gradescope cannot use).
"$ROOT/venv/bin/python" -m pip install --quiet --index-url https://download.pytorch.org/whl/cpu torch==2.5.1
"$ROOT/venv/bin/python" -m pip install --quiet -r requirements.txt
"$ROOT/venv/bin/python" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'
# The sandbox user the student's code runs as (grader/sandbox.py; the runner makes it too if missing).
id -u rnn-grader >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin --user-group rnn-grader
