"""Inference: prompts, long-script chunking, the synthesis engine and the model.infer command."""
