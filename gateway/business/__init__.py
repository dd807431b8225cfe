"""The business vocabulary both flows share (QCVN 102:2016 ``Bussiness`` and status messages).

* :mod:`.statuses`      business status messages in both directions (01–06, 13/15/16):
  emitted to the outbox, recorded from the axis;
* :mod:`.status_rules`  which status may follow which, and the limits of every field;
* :mod:`.flow_rules`    the business flows (revoke, update, replace, take back): which document
  is the original, the states they lead to, the typed message kinds.

Neither flow's package is imported from here: inbound and outbound both build on it.
"""
