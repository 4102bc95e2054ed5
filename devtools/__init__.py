"""Developer tools: the local process harness shared by the integration tests and the benchmark."""
