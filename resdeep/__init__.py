"""resdeep."""
