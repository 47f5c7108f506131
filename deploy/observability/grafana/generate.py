#!/usr/bin/env python3
"""Writes the two provisioned Grafana dashboards (business.json, system.json).

The JSON files are committed; edit this script and run it again
(`python3 deploy/observability/grafana/generate.py`) rather than editing them by hand.
"""
import json
import os

DS = {"type": "prometheus", "uid": "alexandrite-prometheus"}
HERE = os.path.dirname(os.path.abspath(__file__))


class Layout:
    def __init__(self):
        self.panels = []
        self.x = 0
        self.y = 0
        self.row_h = 0

    def add(self, panel, w=12, h=8):
        if self.x + w > 24:
            self.x = 0
            self.y += self.row_h
            self.row_h = 0
        panel["id"] = len(self.panels) + 1
        panel["gridPos"] = {"x": self.x, "y": self.y, "w": w, "h": h}
        panel["datasource"] = DS
        self.panels.append(panel)
        self.x += w
        self.row_h = max(self.row_h, h)

    def row(self, title):
        self.x = 0
        self.y += self.row_h
        self.row_h = 1
        self.panels.append({
            "id": len(self.panels) + 1, "type": "row", "title": title, "collapsed": False,
            "gridPos": {"x": 0, "y": self.y, "w": 24, "h": 1}, "panels": [],
        })
        self.x = 24  # next panel starts a new line


def targets(*exprs):
    out = []
    for i, e in enumerate(exprs):
        expr, legend = e if isinstance(e, tuple) else (e, "")
        out.append({"refId": chr(ord("A") + i), "datasource": DS, "expr": expr,
                    "legendFormat": legend})
    return out


def panel(kind, title, description, unit, *exprs, **extra):
    p = {
        "type": kind, "title": title, "description": description,
        "targets": targets(*exprs),
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
    }
    if kind == "stat":
        p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background"}
        p["fieldConfig"]["defaults"]["thresholds"] = {"mode": "absolute", "steps": [
            {"color": "green", "value": None}, {"color": "red", "value": 1}]}
    if kind == "bargauge":
        p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"]}, "orientation": "horizontal",
                        "displayMode": "basic"}
    p.update(extra)
    return p


def dashboard(uid, title, description, layout, tags):
    return {
        "uid": uid, "title": title, "description": description, "tags": tags,
        "schemaVersion": 39, "version": 1, "editable": True, "timezone": "utc",
        "refresh": "30s", "time": {"from": "now-24h", "to": "now"},
        "templating": {"list": []}, "annotations": {"list": []},
        "panels": layout.panels,
    }


def business():
    L = Layout()
    L.row("Orders now")
    L.add(panel("stat", "Overdue orders", "Orders past their SLA deadline in their current status (the more alarming of the CRM's and MES's views).",
                "none", "sum(max by (status) (alexandrite_orders_overdue))"), w=6, h=5)
    L.add(panel("stat", "At risk", "Orders near their SLA deadline (past sla.at_risk_permille of the limit).",
                "none", "sum(max by (status) (alexandrite_orders_at_risk))"), w=6, h=5)
    L.add(panel("stat", "Uploads today", "Models received in the last 24 hours.",
                "none", 'sum(increase(alexandrite_events_published_total{type="model.received"}[24h]))'), w=6, h=5)
    L.add(panel("stat", "CRM/MES differences", "Orders CRM and MES disagreed about at the last reconciliation.",
                "none", "max(alexandrite_reconcile_differences)"), w=6, h=5)
    L.add(panel("bargauge", "Orders by status", "Orders in each status, as the CRM (the customer's view) counts them.",
                "none", ('max by (status) (alexandrite_orders{service="crm"})', "{{status}}")))
    L.add(panel("bargauge", "Oldest order in each status", "How long the order waiting longest in each status has been there.",
                "s", ('max by (status) (alexandrite_orders_oldest_age_seconds{service="crm"})', "{{status}}")))
    L.row("SLA")
    L.add(panel("timeseries", "Overdue by status", "Orders past their deadline, per status.",
                "none", ("max by (status) (alexandrite_orders_overdue)", "{{status}}")))
    L.add(panel("timeseries", "At risk by status", "Orders near their deadline, per status.",
                "none", ("max by (status) (alexandrite_orders_at_risk)", "{{status}}")))
    L.add(panel("timeseries", "Overdue orders announced to managers", "Orders announced as overdue (once per order and status), per hour.",
                "none", ("sum by (status) (increase(alexandrite_sla_overdue_announced_total[1h]))", "{{status}}")))
    L.add(panel("table", "SLA limits", "The configured limit of each status (sla.*_seconds).",
                "s", ("max by (status) (alexandrite_sla_limit_seconds)", "{{status}}"),
                options={"showHeader": True}))
    L.row("Lead times")
    L.add(panel("timeseries", "Time from upload to status (median)", "Half of the orders reached each status within this time of their upload.",
                "s", ("histogram_quantile(0.5, sum by (le, status) (rate(alexandrite_order_lead_time_seconds_bucket[6h])))", "{{status}}")))
    L.add(panel("timeseries", "Time from upload to status (90th percentile)", "Nine orders in ten reached each status within this time of their upload.",
                "s", ("histogram_quantile(0.9, sum by (le, status) (rate(alexandrite_order_lead_time_seconds_bucket[6h])))", "{{status}}")))
    L.add(panel("timeseries", "Orders reaching each status per hour", "Throughput of the lifecycle.",
                "none", ("sum by (status) (increase(alexandrite_order_lead_time_seconds_count[1h]))", "{{status}}")), w=24)
    return dashboard("alexandrite-business", "Alexandrite — orders",
                     "Orders by status, lead times and SLA clocks.", L, ["alexandrite", "business"])


def system():
    L = Layout()
    L.row("HTTP (rate, errors, duration) per service")
    L.add(panel("timeseries", "Requests per second", "Every answered request, by service.",
                "reqps", ("sum by (service) (rate(alexandrite_http_requests_total[5m]))", "{{service}}")), w=8)
    L.add(panel("timeseries", "Error ratio (5xx)", "Share of requests answered with a 5xx status.",
                "percentunit", ("sum by (service) (rate(alexandrite_http_errors_total[5m])) / sum by (service) (rate(alexandrite_http_requests_total[5m]))", "{{service}}")), w=8)
    L.add(panel("timeseries", "Latency p95", "95th percentile of the time to answer.",
                "s", ("histogram_quantile(0.95, sum by (le, service) (rate(alexandrite_http_request_duration_seconds_bucket[5m])))", "{{service}}")), w=8)
    L.add(panel("table", "Slowest routes (p95)", "Route templates by 95th percentile latency.",
                "s", ("topk(10, histogram_quantile(0.95, sum by (le, service, route) (rate(alexandrite_http_request_duration_seconds_bucket[15m]))))", "{{service}} {{route}}")), w=12)
    L.add(panel("timeseries", "Targets up", "1 when Prometheus can scrape the role.",
                "none", ('up{job=~"alexandrite.*"}', "{{job}} {{instance}}")), w=12)
    L.row("Queues and events")
    L.add(panel("timeseries", "Queue depth", "Messages waiting per queue.",
                "none", ("max by (queue) (alexandrite_bus_queue_depth)", "{{queue}}")), w=8)
    L.add(panel("timeseries", "Oldest message waiting", "Age of the oldest waiting message (embedded bus).",
                "s", ("max by (queue) (alexandrite_bus_queue_oldest_message_age_seconds)", "{{queue}}")), w=8)
    L.add(panel("timeseries", "Dead letters", "Messages in each queue's dead letters (alexandrite dlq list).",
                "none", ("max by (queue) (alexandrite_bus_dead_letters)", "{{queue}}")), w=8)
    L.add(panel("timeseries", "Events published per second", "By type; failures are publish attempts the bus refused.",
                "ops", ("sum by (type) (rate(alexandrite_events_published_total[5m]))", "{{type}}"),
                ("sum by (type) (rate(alexandrite_events_publish_failures_total[5m]))", "failed {{type}}")), w=12)
    L.add(panel("timeseries", "Deliveries per second", "Consumed, acked, retried, rejected, redelivered and dead-lettered.",
                "ops", ("sum(rate(alexandrite_events_consumed_total[5m]))", "consumed"),
                ("sum(rate(alexandrite_events_acked_total[5m]))", "acked"),
                ("sum(rate(alexandrite_events_retried_total[5m]))", "retried"),
                ("sum(rate(alexandrite_events_rejected_total[5m]))", "rejected"),
                ("sum(rate(alexandrite_events_redelivered_total[5m]))", "redelivered"),
                ("sum by (reason) (rate(alexandrite_events_dead_lettered_total[5m]))", "dead-lettered: {{reason}}")), w=12)
    L.add(panel("timeseries", "Delivery lag p95", "From an event's occurrence to its delivery, per queue.",
                "s", ("histogram_quantile(0.95, sum by (le, queue) (rate(alexandrite_event_delivery_lag_seconds_bucket[5m])))", "{{queue}}")), w=12)
    L.add(panel("timeseries", "Handling time p95", "Time a consumer spends on one delivery, per queue.",
                "s", ("histogram_quantile(0.95, sum by (le, queue) (rate(alexandrite_event_handling_duration_seconds_bucket[5m])))", "{{queue}}")), w=12)
    L.add(panel("timeseries", "Outbox backlog", "Events written but not yet published, per service.",
                "none", ("max by (service) (alexandrite_outbox_backlog)", "{{service}}")), w=12)
    L.add(panel("timeseries", "Oldest unpublished event", "Age of the oldest outbox row, per service.",
                "s", ("max by (service) (alexandrite_outbox_oldest_age_seconds)", "{{service}}")), w=12)
    L.row("Pricing workers")
    L.add(panel("timeseries", "Workers busy", "Jobs in flight against the workers available.",
                "none", ("sum(alexandrite_pricing_jobs_in_flight)", "busy"), ("sum(alexandrite_pricing_workers)", "workers")), w=8)
    L.add(panel("timeseries", "Pricing time", "Median and 95th percentile, by outcome.",
                "s", ("histogram_quantile(0.5, sum by (le, outcome) (rate(alexandrite_pricing_duration_seconds_bucket[10m])))", "p50 {{outcome}}"),
                ("histogram_quantile(0.95, sum by (le, outcome) (rate(alexandrite_pricing_duration_seconds_bucket[10m])))", "p95 {{outcome}}")), w=8)
    L.add(panel("timeseries", "Jobs per minute", "Pricing jobs finished, by outcome.",
                "none", ("sum by (outcome) (rate(alexandrite_pricing_duration_seconds_count[5m])) * 60", "{{outcome}}")), w=8)
    L.add(panel("timeseries", "Model size (median, p95)", "Bytes of the model files priced.",
                "bytes", ("histogram_quantile(0.5, sum by (le) (rate(alexandrite_pricing_model_size_bytes_bucket[1h])))", "p50"),
                ("histogram_quantile(0.95, sum by (le) (rate(alexandrite_pricing_model_size_bytes_bucket[1h])))", "p95")), w=12)
    L.add(panel("timeseries", "Triangles (median, p95)", "Triangles of the models priced.",
                "none", ("histogram_quantile(0.5, sum by (le) (rate(alexandrite_pricing_model_triangles_bucket[1h])))", "p50"),
                ("histogram_quantile(0.95, sum by (le) (rate(alexandrite_pricing_model_triangles_bucket[1h])))", "p95")), w=12)
    L.row("Cache and databases")
    L.add(panel("timeseries", "Cache hit ratio", "Lookups answered from each cache.",
                "percentunit", ("sum by (cache) (rate(alexandrite_cache_hits_total[5m])) / (sum by (cache) (rate(alexandrite_cache_hits_total[5m])) + sum by (cache) (rate(alexandrite_cache_misses_total[5m])))", "{{cache}}")), w=12)
    L.add(panel("timeseries", "Database pool", "Connections in use against the pool's maximum, per service.",
                "none", ('sum by (service) (alexandrite_db_pool_connections{state="in_use"})', "in use {{service}}"),
                ("sum by (service) (alexandrite_db_pool_max_connections)", "max {{service}}")), w=12)
    return dashboard("alexandrite-system", "Alexandrite — system",
                     "RED per service, queues and events, pricing workers, cache and databases.", L, ["alexandrite", "system"])


for name, board in [("business", business()), ("system", system())]:
    path = os.path.join(HERE, "dashboards", f"{name}.json")
    with open(path, "w") as f:
        json.dump(board, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(path)
