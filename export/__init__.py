"""Checkpoint -> codec bundle (ONNX graphs with lictrt custom ops, coder tables) -> TensorRT engines."""
