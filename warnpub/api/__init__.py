"""warnpub.api."""
