"""Signed-in pages: the account list, the live dashboard, invoice CSVs; and the demo commands."""
