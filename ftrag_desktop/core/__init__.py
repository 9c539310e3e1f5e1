"""The headless engine: parsing, chunking, the LanceDB index, sync, retrieval, answers.

Nothing under this package may import Qt; an import-linter contract enforces it.
"""
