"""Project components that Rasa loads by module path (config.yml, credentials.yml, endpoints.yml)."""
