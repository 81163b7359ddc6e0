"""warnpub.storage."""
