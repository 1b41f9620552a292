"""The node's rules: pure decisions about what one node does, with no I/O (fed times and events)."""
