"""`python -m gopay` is the `gopay` command."""

from gopay.cli import main

main()
