"""Audiences (installed as ``warnpub.audiences``): areas, people, needs, devices, targeting."""
