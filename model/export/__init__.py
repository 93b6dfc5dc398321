"""ONNX export of a checkpoint and the onnxruntime engine that runs it."""
