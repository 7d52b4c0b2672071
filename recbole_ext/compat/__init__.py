"""Shims for today's stack that RecBole 1.2.1 predates; leaves, importing nothing of ours."""
