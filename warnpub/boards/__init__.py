"""Notice boards: digital boards that show the active warnings of their area, and printable
paper notices (see docs/boards.md).

Small modules, one job each: ``tables`` (credentials, what each board was sent and showed),
``tokens`` (issue and check board tokens), ``content`` (the warnings a board shows, in order),
``heartbeat`` (a board's request records it was seen and what it showed), ``hub`` (wakes the
event streams when warnings change), ``notices`` (the A4 notice with its QR code),
``look`` (level colours, names and icons).
"""
