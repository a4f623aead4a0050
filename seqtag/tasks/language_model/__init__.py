"""Character- and word-level recurrent language models (forward, backward or both): recipe -> model -> task -> predictor."""
