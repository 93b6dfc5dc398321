"""Quality measures of dialogue segments, one module each (used by :mod:`pipeline.filters`).

- :mod:`pipeline.quality.dnsmos`: DNSMOS P.835 (and optionally P.808), batched over all windows.
- :mod:`pipeline.quality.role_purity`: is each [S1]/[S2] role one voice (speaker embeddings).
- :mod:`pipeline.quality.cps`: characters per second, bounds per language.
"""
