"""Prometheus metrics of one gateway process (one registry per process, or per test app)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_requests = Counter("edoc_http_requests_total", "HTTP requests",
                                     ["method", "route", "status"], registry=r)
        self.http_latency = Histogram("edoc_http_request_seconds", "HTTP request latency",
                                      ["route"], registry=r)
        self.outbox_published = Counter("edoc_outbox_published_total",
                                        "Outbox rows confirmed by the broker", registry=r)
        self.outbox_failures = Counter("edoc_outbox_publish_failures_total",
                                       "Outbox publishes not confirmed (rescheduled)", registry=r)
        self.outbox_backlog = Gauge("edoc_outbox_backlog", "Outbox rows waiting",
                                    ["destination"], registry=r)
        self.outbox_oldest_seconds = Gauge("edoc_outbox_oldest_seconds",
                                           "Age of the oldest outbox row", registry=r)
        self.deliveries = Gauge("edoc_deliveries", "Deliveries by state", ["state"], registry=r)
        self.deliveries_overdue = Gauge(
            "edoc_deliveries_overdue",
            "Deliveries not delivered 15 minutes after their last change (stuck or dead)",
            registry=r)
        self.documents_received = Counter("edoc_documents_received_total",
                                          "Inbound documents stored", ["state"], registry=r)
        self.intake_conflicts = Counter(
            "edoc_intake_conflicts_total",
            "Packages kept in CONFLICT: a known sender and DocumentId with other content",
            registry=r)
        self.axis_polls = Counter("edoc_axis_polls_total", "Axis polls", ["axis", "outcome"],
                                  registry=r)
        self.tracking_checks = Counter(
            "edoc_outbound_tracking_checks_total",
            "getSentEdocList checks of sent copies (outcome: changed, unchanged, missing,"
            " error, stopped)", ["axis", "outcome"], registry=r)
        self.signatures = Counter("edoc_signatures_verified_total", "PDF signature verdicts",
                                  ["verdict"], registry=r)
        self.task_restarts = Counter("edoc_background_task_restarts_total",
                                     "Background tasks restarted after a crash", ["task"],
                                     registry=r)
        self.intake_seconds = Histogram("edoc_intake_seconds", "Time to take in one document",
                                        registry=r)
        self.crl_age_seconds = Gauge(
            "edoc_crl_age_seconds",
            "Age (now - thisUpdate) of the cached CRL of each CA (the oldest when it has several)",
            ["issuer"], registry=r)
        self.crl_fetch_errors = Counter("edoc_crl_fetch_errors_total",
                                        "CRL refreshes that kept the previous CRL",
                                        ["url", "code"], registry=r)
        self.key_expiry_days = Gauge(
            "edoc_signing_key_expiry_days",
            "Days until the signing key's certificate expires (negative once expired)",
            ["alias"], registry=r)
        self.key_up = Gauge("edoc_signing_key_up",
                            "1 when the signing key can sign (state ok or warning), else 0",
                            ["alias"], registry=r)
        self.key_canary_failures = Counter(
            "edoc_signing_key_canary_failures_total",
            "Signing key health checks (canary signatures) that failed", ["alias", "code"],
            registry=r)

    async def refresh_from_db(self, pool) -> None:
        """Update gauges that mirror database state (called on scrape)."""
        rows = await pool.fetch("SELECT destination, count(*) AS n FROM outbox GROUP BY 1")
        self.outbox_backlog.clear()
        for row in rows:
            self.outbox_backlog.labels(row["destination"]).set(row["n"])
        oldest = await pool.fetchval(
            "SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0) FROM outbox")
        self.outbox_oldest_seconds.set(float(oldest))
        self.deliveries.clear()
        for row in await pool.fetch("SELECT state, count(*) AS n FROM deliveries GROUP BY 1"):
            self.deliveries.labels(row["state"]).set(row["n"])
        self.deliveries_overdue.set(await pool.fetchval(
            "SELECT count(*) FROM deliveries WHERE state <> 'DELIVERED'"
            " AND updated_at < now() - interval '15 minutes'"))
