"""The agent's client of the cluster it runs ``kubernetes`` scores on (docs/runtimes.md)."""
