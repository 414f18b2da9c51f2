"""Stripe and app events become orders: the normalised event (events), its rules (fold), group commit (batch)."""
