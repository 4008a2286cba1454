"""Using a trained agent: `load` (a Python object that acts) and `export` (a standalone TorchScript or ONNX file)."""
