"""The inbound flow: a document from the axis to an agency's eOffice.

In the order a document meets them:

* :mod:`.poller`       polls each axis connection (``getReceivedEdocList`` → ``getEdoc`` → ack);
* :mod:`.intake`       parse, deduplicate, verify, decide, store and route in one transaction;
* :mod:`.rules`        intake's pure rules (package identity, salvage of malformed packages);
* :mod:`.policy`       intake's decision (ROUTED / HELD / REJECTED) and the sender check;
* :mod:`.store`        intake's tables (document with its parts, deliveries, timeline);
* :mod:`.verification` the judge of the PDFs (signing pool, intake lane);
* :mod:`.routing`      the delivery message an agency's adapter receives;
* :mod:`.outcomes`     the adapters' delivery outcomes applied to deliveries;
* :mod:`.business`     revoke/update/replace/take back received: linked to the original,
                       delivered as typed messages;
* :mod:`.holds`        an operator's decision on a HELD or CONFLICT document;
* :mod:`.refused`      axis items refused as malformed, remembered so they are fetched once.

The statuses the flow answers with are shared with the outbound flow
(:mod:`gateway.business`).
"""
