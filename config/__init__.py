"""Default configuration shipped inside the wheel (installed as ``warnpub.defaults``)."""
