"""``python -m rag.cli``: the ``rosetta`` command."""

from rag.cli.app import main

main()
