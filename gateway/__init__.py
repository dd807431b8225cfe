"""edoc-gateway: document-exchange gateway for edXML (QCVN 102:2016) with PAdES signing."""

__version__ = "0.1.0"
