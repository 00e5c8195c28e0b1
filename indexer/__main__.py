"""``python -m indexer``: the index's commands (the API's healing starts its rebuilds so)."""

from indexer.cli.main import cli

cli()
