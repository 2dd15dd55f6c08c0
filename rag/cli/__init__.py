"""The terminal app ``rosetta``: commands (app.py), the chat (chat*.py), rendering (render*.py), /export.

It sits on top of the facade (rag/rosetta.py) and holds no logic of its own.
"""

from rag.cli.app import main

__all__ = ["main"]
