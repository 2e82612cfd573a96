"""Domain models; importing this package registers every table."""
