"""The test suite: `make test` (lint, types, then pytest with the trained model)."""
