"""Prometheus metrics: collectors that read the media plane (the ingest and its worker processes)
and the server's own services at scrape time, and the short cache in front of the workers."""
