"""warnpub.audit."""
