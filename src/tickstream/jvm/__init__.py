"""The JVM side: finding Java, the Maven-resolved jar cache, the pins, the Spark session."""
