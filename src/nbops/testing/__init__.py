"""Notebooks as pytest tests: the pytest plugin (`plugin.py`) and one notebook as a test (`smoke.py`)."""
