"""Delivery guarantees of the engine: cursors, the state file, dedupe, shards, backoff.

Plain classes and functions with no sockets or threads.
"""
