"""The operator REST API's metering half: meters and their device tokens."""
