"""Input channels registered by module path in credentials.yml."""
