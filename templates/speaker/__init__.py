"""Loudspeaker and voice templates (installed as ``warnpub.templates.speaker``)."""
