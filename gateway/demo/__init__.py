"""The demo exchange: an axis simulator, the gateway, adapters and eOffice simulators in one run."""
