"""warnpub.storage.migrations."""
