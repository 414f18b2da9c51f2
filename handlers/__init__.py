"""Every entry point, thin: parse input, call queries and builders, send."""
