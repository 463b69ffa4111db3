"""dltrain: train neural networks written in numpy from YAML configs."""
__version__ = "0.1.0"
