"""warnpub.storage.migrations.versions."""
