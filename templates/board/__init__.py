"""Notice board templates (installed as ``warnpub.templates.board``)."""
