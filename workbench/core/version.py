"""The Workbench version, one definition for the package, the wheel and the plugin list."""

__version__ = "0.1.0"
