"""Exploring a collection: the embeddings map, clusters, per-item scores, zero-shot tags, linear probes.

Each writes what it finds as item metadata (``cluster``, ``tags``, ``uniqueness``, a probe's name...),
so ``--where``, the page's filters and curation use it like any other field.
"""
