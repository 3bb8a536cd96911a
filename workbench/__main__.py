"""`python -m workbench` runs the CLI."""

from workbench.cli.app import main

main()
