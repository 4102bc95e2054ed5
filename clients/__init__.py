"""Clients of Meterline's public protocols, for devices and tools; no Django here."""
