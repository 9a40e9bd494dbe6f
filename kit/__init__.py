"""kit: measure and explain Linux I/O engines."""
__version__ = "0.1.0"
