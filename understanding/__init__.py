"""NLU components that config.yml loads by module path: they rewrite, read and check the
message before and after Rasa's own classifiers."""
