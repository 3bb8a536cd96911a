"""An example Workbench plugin."""
