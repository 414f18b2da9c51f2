"""Web surfaces: dashboard view and sign-in, local feed state and rendering, bearer checks; assets as package data."""
