"""Synthesis: blend lesions onto bodies, make tracking pairs, datasets."""
