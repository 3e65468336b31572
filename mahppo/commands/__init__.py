"""The app layer: one module per ``mahppo`` subcommand (may import any package; no package imports it)."""
