"""The outbound flow: a document from an agency's eOffice to the axis (issue 13).

Today it holds what exists of that side:

* :mod:`.axis_sender`  sends outbox rows (``axis:<connection>``) to the axis: status messages
  and documents, retried until the axis accepts them.

It will hold the rest of the flow (issue 13): **submission** (``POST /v1/outbound`` and its queue
message, validation, idempotency), **sealing** (the agency seal and attachment signatures),
**building** (the edXML package), **sending** (``sendEdoc`` through the outbox, with
reconciliation so nothing is sent twice) and **tracking** (per-receiver axis status and the
business statuses coming back).
"""
