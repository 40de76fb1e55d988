"""The `tickstream` command: wiring settings to the modules that do the work."""
