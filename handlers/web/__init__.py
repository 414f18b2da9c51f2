"""Plain HTTP routes: liveness, monitoring API, dashboard, local feed."""
