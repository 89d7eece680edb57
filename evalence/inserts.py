"""One-row INSERTs with the statement built once: for rows written on a hot path (every firewall evaluation).

`Model.save(force_insert=True)` compiles its INSERT afresh for every row: it walks the fields, resolves each value
through the SQL compiler and assembles the statement, which costs more Python than sending the row. The statement of
a model's INSERT does not change, so `PreparedInsert` builds it once per database (and set of placeholders) and per
row only prepares the values, exactly as the compiler would (`pre_save`, then `get_db_prep_save`). What it does not
do, and why that is fine where it is used: it sends no `pre_save`/`post_save` signals (a model registered here must
have no receivers — checked by a test), and a value that is an SQL expression goes through `save` as before.
"""

from __future__ import annotations

from typing import Any

from django.db import connections, models


class PreparedInsert:
    def __init__(self, model: type[models.Model]) -> None:
        self.model = model
        self.fields = list(model._meta.concrete_fields)
        self._statements: dict[tuple[str, tuple[str, ...]], str] = {}

    def statement(self, connection: Any, placeholders: tuple[str, ...]) -> str:
        key = (connection.alias, placeholders)
        sql = self._statements.get(key)
        if sql is None:
            quote = connection.ops.quote_name
            columns = ", ".join(quote(field.column) for field in self.fields)
            # Names from the model's own metadata, quoted by the backend; values are parameters.
            sql = f"INSERT INTO {quote(self.model._meta.db_table)} ({columns}) VALUES ({', '.join(placeholders)})"  # noqa: S608
            self._statements[key] = sql
        return sql

    def insert(self, obj: models.Model, using: str = "default") -> None:
        """INSERT `obj` as `obj.save(force_insert=True, using=using)` would, without its signals."""
        connection = connections[using]
        values = [field.pre_save(obj, True) for field in self.fields]
        if any(hasattr(value, "resolve_expression") for value in values):
            obj.save(force_insert=True, using=using)
            return
        params = [field.get_db_prep_save(value, connection) for field, value in zip(self.fields, values, strict=True)]
        # A field with its own placeholder (a BinaryField on some backends) gets it, as the SQL compiler gives it.
        placeholders = tuple(
            field.get_placeholder(value, None, connection) if hasattr(field, "get_placeholder") else "%s"
            for field, value in zip(self.fields, params, strict=True)
        )
        with connection.cursor() as cursor:
            cursor.execute(self.statement(connection, placeholders), params)
        obj._state.adding = False
        obj._state.db = using
