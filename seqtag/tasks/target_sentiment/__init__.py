"""Target-dependent sentiment (LSTM, TD-LSTM, TC-LSTM of Tang et al. 2015): recipe -> model -> task -> predictor."""
