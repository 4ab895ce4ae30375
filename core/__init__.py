"""What every Citewise app shares and nothing of ours is imported by: typed settings (core.config) and the error base
(core.errors). The bottom of the import layers (docs/architecture.md)."""
