"""The search side: the Retriever (retriever.py) runs the dense and sparse legs on the store, fuses them
with ``rrf`` (fusion.py) and reorders the best with a reranker (rerankers/)."""
