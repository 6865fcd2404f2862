"""Read models: each a Projection, its PostgreSQL view and the runner that keeps it current."""
