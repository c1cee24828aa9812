#!/usr/bin/env bash
# Rebuild models/smolrgpt-tiny-synthetic from nothing (synthetic data, tokenizer, three stages,
# held-out evaluation, model card). One to two hours on 2 CPU cores. Extra arguments go to
# `python -m training.embedded` (see --help), e.g. --work DIR or --step-scale 0.05 for a smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
exec "$PYTHON" -m training.embedded "$@"
