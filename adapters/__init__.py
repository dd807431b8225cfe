"""Adapter SDK and adapters that carry documents from agency queues into eOffice systems."""
