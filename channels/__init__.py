"""Channel adapters (installed as ``warnpub.channels``): one module per way of reaching people."""
