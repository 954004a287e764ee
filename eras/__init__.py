"""eras: exact, real-time volunteer statistics for Zooniverse."""

__version__ = "0.1.0"
