"""salespulse demo: a synthetic store (seed), signed Stripe events (events), the simulator sending them (runner)."""
