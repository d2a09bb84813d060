"""Latency theory: the i.i.d.-acceptance timing model, exact expectations, Figure 2."""
