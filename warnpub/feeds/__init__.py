"""What partner systems read: the CAP 1.2 Atom feed of active public warnings and each
warning's published CAP document (see docs/partners.md).

- :mod:`warnpub.feeds.documents`: which warnings are public, their CAP URL and signed document.
- :mod:`warnpub.feeds.atom`: the active public warnings and the Atom feed built from them.
- :mod:`warnpub.feeds.conditional`: ETag / Last-Modified and conditional GET (304).
"""
