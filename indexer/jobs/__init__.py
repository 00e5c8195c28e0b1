"""The index's pipelines: importing listings and feeds, watching feeds, and their reports."""
