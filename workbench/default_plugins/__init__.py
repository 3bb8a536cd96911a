"""Workbench's own features, registered through the same hooks as third-party plugins."""
