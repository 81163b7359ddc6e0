"""Callbacks from peers (SMS delivery receipts, inbound replies): signatures and payload parsing.

Pure functions only; the HTTP routes and the database side live with the dispatcher.
"""
