"""Project components that Rasa loads by module path (config.yml, credentials.yml, endpoints.yml).

Loading any of them applies the measured Rasa fixes in addons/speedups.py.
"""
from addons import speedups

speedups.apply()
