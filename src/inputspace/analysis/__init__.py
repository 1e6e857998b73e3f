"""Measures over tensors and tables: the vocabulary's geometry, finished runs, spectra."""
