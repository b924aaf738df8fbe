"""`python -m mint.audit` is `mint audit`."""

import sys

from mint.cli import run

run(["audit", *sys.argv[1:]])
