"""The shared core under both ``pipeline`` and ``model``: the dialogue script format and its
speaker tags (:mod:`.dialogue_script`), text normalisation for scoring (:mod:`.text_norm`) and
word error rates (:mod:`.wer`). It imports neither of them (``.importlinter`` checks it)."""
