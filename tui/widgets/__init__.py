"""One widget per module, each with its messages nested in it."""
