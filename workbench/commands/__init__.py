"""CLI command groups, one module per area; `workbench.cli` registers each Typer app."""
