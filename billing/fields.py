"""A decimal model field that stays exact on every supported database.

PostgreSQL's numeric is exact. SQLite's NUMERIC affinity keeps only 15
significant digits (it stores a REAL), so a meter's running usage of
123456789.123456789 would silently lose its last digits. On SQLite this
field stores the decimal's text instead. It is for values that are read and
written, not summed or ordered in SQL (text sorts as text).
"""

from decimal import Decimal

from django.db import models


class ExactDecimalField(models.DecimalField):
    def get_internal_type(self) -> str:
        # Not "DecimalField": SQLite's backend would convert the text it
        # reads through a float. Column types come from db_type below.
        return "TextField"

    def db_type(self, connection) -> str:
        if connection.vendor == "sqlite":
            return "text"
        return f"numeric({self.max_digits}, {self.decimal_places})"

    def from_db_value(self, value, expression, connection) -> Decimal | None:
        return None if value is None else Decimal(value)

    def get_db_prep_value(self, value, connection, prepared=False):
        value = super().get_db_prep_value(value, connection, prepared)
        if connection.vendor == "sqlite" and value is not None:
            return format(Decimal(value), "f")
        return value
