"""warnpub.cli."""
