"""Widgets shared by the panes: the belief panel and the transcript."""
