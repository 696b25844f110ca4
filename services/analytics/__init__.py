"""Analytics service: projections of every event, summary API, snapshots, SSE and the live dashboard."""
