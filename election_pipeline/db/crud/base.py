"""Generic CRUD over one model, for the analyst-facing paths (docs/data-model.md#crud).

Every write commits. A failed commit is rolled back before the error is re-raised, so the
session stays usable. The pipeline's bulk paths do not go through here.
"""

from __future__ import annotations

from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from ..models import Base

ModelType = TypeVar("ModelType", bound=Base)
CreateSchemaType = TypeVar("CreateSchemaType", bound=BaseModel)
UpdateSchemaType = TypeVar("UpdateSchemaType", bound=BaseModel)


class NotFoundError(LookupError):
    """No row of ``model`` has this id."""

    def __init__(self, model: type[Base] | str, id: Any) -> None:
        self.model = model if isinstance(model, str) else model.__name__
        self.id = id
        super().__init__(f"{self.model} with id {id!r} not found")


class BaseCRUD(Generic[ModelType, CreateSchemaType, UpdateSchemaType]):
    """Create, read, update and delete rows of ``model`` through a session.

    Subclasses set ``model`` and the schemas; dicts given to :meth:`create`/:meth:`update`
    are validated through those schemas, so the same rules apply to both kinds of input.
    """

    model: ClassVar[type[Base]]
    create_schema: ClassVar[type[BaseModel] | None] = None
    update_schema: ClassVar[type[BaseModel] | None] = None

    def __init__(self, db: Session) -> None:
        self.db = db

    # -- reading -----------------------------------------------------------------------

    def get(self, id: Any) -> ModelType | None:
        """The row with this primary key, or ``None``."""
        return self.db.get(self.model, id)  # type: ignore[return-value]

    def get_or_raise(self, id: Any) -> ModelType:
        """The row with this primary key; :class:`NotFoundError` if there is none."""
        obj = self.get(id)
        if obj is None:
            raise NotFoundError(self.model, id)
        return obj

    def get_multi(self, *, skip: int = 0, limit: int = 100) -> list[ModelType]:
        """Rows ordered by primary key, ``limit`` of them after the first ``skip``."""
        pk = inspect(self.model).primary_key
        stmt = select(self.model).order_by(*pk).offset(skip).limit(limit)
        return list(self.db.scalars(stmt))

    def _list(self, stmt: Any) -> list[ModelType]:
        return list(self.db.scalars(stmt))

    # -- writing -----------------------------------------------------------------------

    def create(self, obj_in: CreateSchemaType | dict[str, Any]) -> ModelType:
        """Insert a row from a create schema or a dict (validated by ``create_schema``)."""
        data = self._create_data(obj_in)
        db_obj = self.model(**data)
        self.db.add(db_obj)
        self._commit(db_obj)
        return db_obj  # type: ignore[return-value]

    def update(self, *, db_obj: ModelType, obj_in: UpdateSchemaType | dict[str, Any]) -> ModelType:
        """Apply the fields that ``obj_in`` sets (``exclude_unset``) to ``db_obj``."""
        return self._apply(db_obj, self._update_data(obj_in))

    def delete(self, *, id: Any) -> ModelType:
        """Delete the row and return it; :class:`NotFoundError` if there is none."""
        obj = self.get_or_raise(id)
        self.db.delete(obj)
        self._commit()
        return obj

    # -- helpers for subclasses --------------------------------------------------------

    def _create_data(self, obj_in: BaseModel | dict[str, Any]) -> dict[str, Any]:
        if isinstance(obj_in, dict):
            if self.create_schema is None:
                return self._drop_defaulted_nones(dict(obj_in))
            obj_in = self.create_schema.model_validate(obj_in)
        return self._drop_defaulted_nones(obj_in.model_dump())

    def _update_data(self, obj_in: BaseModel | dict[str, Any]) -> dict[str, Any]:
        if isinstance(obj_in, dict):
            if self.update_schema is None:
                return dict(obj_in)
            obj_in = self.update_schema.model_validate(obj_in)
        return obj_in.model_dump(exclude_unset=True)

    def _drop_defaulted_nones(self, data: dict[str, Any]) -> dict[str, Any]:
        """Leave out ``None`` for columns with a default or a primary key, so the default
        (a new UUID, ``utcnow`` ...) applies instead of NULL."""
        columns = inspect(self.model).columns
        out = {}
        for key, value in data.items():
            column = columns.get(key)
            if (
                value is None
                and column is not None
                and (column.primary_key or column.default is not None or not column.nullable)
            ):
                continue
            out[key] = value
        return out

    def _apply(self, db_obj: ModelType, values: dict[str, Any]) -> ModelType:
        columns = inspect(self.model).columns
        for key, value in values.items():
            column = columns.get(key)
            if column is None and not hasattr(db_obj, key):
                raise AttributeError(f"{self.model.__name__} has no field {key!r}")
            if value is None and column is not None and not column.nullable:
                raise ValueError(f"{self.model.__name__}.{key} cannot be set to None")
        for key, value in values.items():
            setattr(db_obj, key, value)
        self.db.add(db_obj)
        self._commit(db_obj)
        return db_obj

    def _commit(self, *refresh: Base) -> None:
        try:
            self.db.commit()
        except Exception:
            self.db.rollback()
            raise
        for obj in refresh:
            self.db.refresh(obj)


__all__ = ["BaseCRUD", "CreateSchemaType", "ModelType", "NotFoundError", "UpdateSchemaType"]
