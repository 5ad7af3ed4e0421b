"""One module per CLI command; each keeps the command thin and calls into the library."""
