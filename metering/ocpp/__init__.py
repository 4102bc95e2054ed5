"""OCPP 1.6-J, the protocol EV charge points speak (CONTRACT.md section 8).

framing.py reads and writes OCPP-J frames, schemas.py checks payloads against the
OCPP 1.6 JSON schemas the `ocpp` package ships, readings.py turns meter values into
readings, actions.py answers each action a charge point sends, central.py runs one
charge point's connection without a socket (metering/consumers/ocpp.py gives it one),
services.py and selectors.py write and read the sessions, id tags and statuses.
"""
