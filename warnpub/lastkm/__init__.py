"""The last kilometre: acknowledgements, escalation ladders, visit tasks and notices."""
