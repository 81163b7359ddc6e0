"""Jinja2 templates per channel and language (installed as ``warnpub.templates``)."""
