"""Lesion sources (real photos with automatic masks, procedural lesions) and body sources."""
