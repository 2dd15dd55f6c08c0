"""Rerankers: ``cross-encoder`` (sentence-transformers), ``colbert`` (BGE-M3 late interaction), ``cohere``.

Each is a class with a ``load`` classmethod; the facade (rag/rosetta.py) picks one from the Config.
"""
