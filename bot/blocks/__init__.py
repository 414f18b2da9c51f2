"""Pure Block Kit builders: typed values in, `Message` out. Nothing here awaits or queries."""
