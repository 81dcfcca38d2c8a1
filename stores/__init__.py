"""The tracker store and the lock store that endpoints.yml loads by module path."""
