"""The answer side: the loop (loop.py) that searches, generates and checks citations (citations.py), the
conversation around it (conversation.py), prompts (prompts.py), generators (generators/) and the values
they exchange (dialogue.py for the generator seam, types.py for the Answer)."""
