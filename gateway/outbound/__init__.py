"""The outbound flow: a document from an agency's eOffice to the axis (issue 13).

* :mod:`.metadata`    the submission's metadata (edXML header fields under plain names);
* :mod:`.submission`  ``POST /v1/outbound``: idempotency, checks (secrecy, receivers, the
  competent person's signature), the agency seal and attachment signatures, building the
  edXML, storing the document with one copy per receiver and its outbox row;
* :mod:`.store`       the tables it writes and ``GET /v1/outbound/{id}`` reads;
* :mod:`.sending`     one copy to the axis exactly once (attempt counted, reconciled by hash,
  ``SENT``/``FAILED`` recorded before the outbox row leaves);
* :mod:`.axis_sender` the relay's sender of ``axis:<connection>`` rows (copies and status
  messages; permanent refusals leave the outbox);
* :mod:`.states`      every state of a document and of a copy, named;
* :mod:`.flow_rules`  the business flows an eOffice starts on its document (revoke, update,
  replace, take back): their bodies, states, refusals and answers;
* :mod:`.flows`       revoke, update and take back stored and queued (replace is a
  submission with ``Replaces``);
* :mod:`.status_back` a receiver's business status: matched to its copy (only from a
  receiver), recorded, forwarded once to the sending eOffice (delivery ``kind: status``);
* :mod:`.tracking`    the copies' axis receive state, polled from ``getSentEdocList`` while it
  matters (background worker).

Still to come (issue 13): submission as a queue message for adapter-integrated eOffice systems.
"""
