"""Local stand-ins for the services the exporter talks to, for development, demos and end-to-end tests."""
