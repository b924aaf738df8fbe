"""`python -m mint` is `python -m mint.cli`."""

from mint.cli import run

run()
