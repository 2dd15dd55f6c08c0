"""Prompt templates: plain text files with ``$name`` placeholders (string.Template). No logic lives here."""
