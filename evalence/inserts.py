"""One-row INSERTs with the statement built once: for rows written on a hot path (every firewall evaluation).

`Model.save(force_insert=True)` compiles its INSERT afresh for every row: it walks the fields, resolves each value
through the SQL compiler and assembles the statement, which costs more Python than sending the row. The statement of
a model's INSERT never changes, so `PreparedInsert` builds it once per database vendor and per row only prepares the
values, exactly as the compiler would (`pre_save`, then `get_db_prep_save`). What it does not do, and why that is fine
where it is used: it sends no `pre_save`/`post_save` signals (a model registered here must have no receivers — checked
by a test), and a value that is an SQL expression goes through `save` as before.
"""

from __future__ import annotations

from typing import Any

from django.db import connections, models


class PreparedInsert:
    def __init__(self, model: type[models.Model]) -> None:
        self.model = model
        self.fields = list(model._meta.concrete_fields)
        if any(hasattr(field, "get_placeholder") for field in self.fields):
            raise ValueError(f"{model.__name__} has a field with its own SQL placeholder: save() it")
        self._statements: dict[str, str] = {}

    def statement(self, connection: Any) -> str:
        sql = self._statements.get(connection.alias)
        if sql is None:
            quote = connection.ops.quote_name
            columns = ", ".join(quote(field.column) for field in self.fields)
            values = ", ".join(["%s"] * len(self.fields))
            # Names from the model's own metadata, quoted by the backend; values are parameters.
            sql = f"INSERT INTO {quote(self.model._meta.db_table)} ({columns}) VALUES ({values})"  # noqa: S608
            self._statements[connection.alias] = sql
        return sql

    def insert(self, obj: models.Model, using: str = "default") -> None:
        """INSERT `obj` as `obj.save(force_insert=True, using=using)` would, without its signals."""
        connection = connections[using]
        values = [field.pre_save(obj, True) for field in self.fields]
        if any(hasattr(value, "resolve_expression") for value in values):
            obj.save(force_insert=True, using=using)
            return
        params = [field.get_db_prep_save(value, connection) for field, value in zip(self.fields, values, strict=True)]
        with connection.cursor() as cursor:
            cursor.execute(self.statement(connection), params)
        obj._state.adding = False
        obj._state.db = using
