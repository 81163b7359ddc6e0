"""E-mail templates (installed as ``warnpub.templates.email``)."""
