"""Operators' tools: metrics (:mod:`.metrics`) and replaying dead deliveries (:mod:`.replay`).

The operators' console (issue 15) will live here too.
"""
