"""`python -m mint.audit` is `mint audit`."""

from mint.audit.command import main

main()
