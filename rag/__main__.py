"""``python -m rag``: the ``rosetta`` command."""

from rag.cli import main

main()
