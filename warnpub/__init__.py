"""warnpub: a multi-channel early-warning dissemination engine."""

__version__ = "0.1.0"
