"""warnpub.auth."""
