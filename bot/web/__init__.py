"""Web surfaces: what every route shares (middleware: errors, readiness, security headers; guards: Deps and
bearer tokens; static assets), dashboard view and sign-in, local feed state and rendering; assets as package data."""
