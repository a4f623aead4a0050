"""Tree-LSTM sentiment on every node of a tree (Tai et al. 2015): recipe -> model -> task -> predictor."""
