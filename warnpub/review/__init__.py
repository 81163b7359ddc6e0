"""warnpub.review."""
