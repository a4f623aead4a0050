"""Sequence tagging (NER, POS, chunking): recipe -> model -> task -> predictor, and the ONNX runtime."""
