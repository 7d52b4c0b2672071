"""Data sets, data loaders and converters for recbole_ext."""
