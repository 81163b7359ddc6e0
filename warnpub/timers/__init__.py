"""warnpub.timers."""
