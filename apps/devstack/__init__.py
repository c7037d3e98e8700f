"""Development and demo tooling: the one-terminal run command, the demo seed and local
Prometheus/Alertmanager processes. No production code imports it; it imports the apps."""
