"""The PToM Lab TUI: Textual screens and widgets that display and drive `engine/` (no game logic lives here)."""
