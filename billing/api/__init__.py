"""The operator REST API's billing half: accounts, tariffs, dashboard keys, usage, charges."""
