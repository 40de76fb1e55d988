"""Where ticks come from: simulated (GBM), replayed from real files, or live from yfinance."""
