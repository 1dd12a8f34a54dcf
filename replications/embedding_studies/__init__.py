"""Embedding studies: Puzzle 1 (anisotropic embeddings), Puzzle 2 (word2vec-style directions),
emergent positional embeddings of words."""
