"""PToM Lab engine: scenarios, players, the episode loop, the store, data prep, training and evaluation.

This package holds no UI code; `ptom_tui` and `engine.cli` drive it.
"""

__version__ = "0.1.0"
