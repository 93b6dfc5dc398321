"""Quality measures of dialogue segments, one module each (used by :mod:`pipeline.filters`).

- :mod:`pipeline.quality.dnsmos`: DNSMOS P.835 (and optionally P.808), batched over all windows.
- :mod:`pipeline.quality.bandwidth`: effective audio bandwidth from the spectrum.
- :mod:`pipeline.quality.speaker_consistency`: GE2E (Resemblyzer) speaker-label consistency.
- :mod:`pipeline.quality.cps`: characters per second, bounds per language.
"""
