"""Local-cluster Spark sessions: real executor JVMs; one session per module (each start costs ~20 s)."""
