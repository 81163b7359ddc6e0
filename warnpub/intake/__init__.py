"""warnpub.intake."""
