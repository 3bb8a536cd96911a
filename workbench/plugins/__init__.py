"""The plugin system: hook specifications, the pluggy manager, and the records hooks receive."""
