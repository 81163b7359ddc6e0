"""SMS templates (installed as ``warnpub.templates.sms``)."""
