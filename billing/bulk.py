"""Writing many rows fast on PostgreSQL; the ORM's bulk methods elsewhere (SQLite).

The ORM's `bulk_create` costs about 70 µs of Python a row here (model
instances, per-value adaptation, a multi-row INSERT), which alone would cap
rating at a few thousand readings a second; COPY takes plain tuples.
`bulk_update` builds a CASE expression per field and row; one UPDATE from
arrays does the same in a fraction of the time.
"""

from collections.abc import Sequence

from django.db import connection, models


def rows_insert(
    model: type[models.Model], fields: Sequence[str], rows: Sequence[tuple], *, ids: bool = False
) -> list[int] | None:
    """Insert `rows` (values in the order of `fields`, attnames such as `meter_id`).

    With `ids`, return the new rows' primary keys in the order of `rows`.
    """
    if not rows:
        return [] if ids else None
    if connection.vendor != "postgresql":
        objs = [model(**dict(zip(fields, row, strict=True))) for row in rows]
        model.objects.bulk_create(objs)
        return [obj.pk for obj in objs] if ids else None
    meta = model._meta
    columns = [meta.get_field(name).column for name in fields]
    prepare = [_copy_preparer(meta.get_field(name)) for name in fields]
    new_ids: list[int] = []
    with connection.cursor() as cursor:
        if ids:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                [meta.db_table, meta.pk.column, len(rows)],
            )
            new_ids = [pk for (pk,) in cursor.fetchall()]
            columns.insert(0, meta.pk.column)
        table = connection.ops.quote_name(meta.db_table)
        names = ", ".join(connection.ops.quote_name(column) for column in columns)
        with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for n, row in enumerate(rows):
                values = [p(v) if p else v for p, v in zip(prepare, row, strict=True)]
                copy.write_row([new_ids[n], *values] if ids else values)
    return new_ids if ids else None


def _copy_preparer(field: models.Field):
    """What turns a Python value into one COPY takes; None where it already is one."""
    if isinstance(field, models.JSONField):
        return lambda value: field.get_db_prep_save(value, connection)
    return None


def rows_update(objs: Sequence[models.Model], fields: Sequence[str]) -> None:
    """Save these fields of already saved model instances (all of one model), in one query."""
    if not objs:
        return
    if connection.vendor != "postgresql":
        type(objs[0]).objects.bulk_update(objs, fields)
        return
    meta = objs[0]._meta
    quote = connection.ops.quote_name
    columns = [meta.pk, *(meta.get_field(name) for name in fields)]
    arrays = ", ".join(f"%s::{field.db_type(connection)}[]" for field in columns)
    names = ", ".join(quote(field.column) for field in columns)
    assignments = ", ".join(f"{quote(f.column)} = v.{quote(f.column)}" for f in columns[1:])
    pk = quote(meta.pk.column)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(meta.db_table)} AS t SET {assignments}"  # noqa: S608 (model names)
            f" FROM unnest({arrays}) AS v({names}) WHERE t.{pk} = v.{pk}",
            [[getattr(obj, field.attname) for obj in objs] for field in columns],
        )
