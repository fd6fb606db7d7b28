"""The I/O shells of the engine: connections, socket threads and the hand-off."""
