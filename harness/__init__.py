"""Starting the real servers and databases on this machine, for the tests and the benchmark."""
