"""Evaluation of generated dialogues: the model.evaluate command over :mod:`model.evaluation.metrics`."""
