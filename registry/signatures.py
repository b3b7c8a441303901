"""A version's signature inferred from a sample input, when none is given.

``register_model(..., input_example=...)`` records ``{"inputs": {field: type},
"outputs": {field: type}}`` in the vocabulary signatures are written in (``float``,
``int``, ``bool``, ``str``, ``list``, ``dict``): inputs from the example's fields (a
mapping, a list of such records, a pandas DataFrame or a 1-D/2-D array, whose
columns are ``x0``, ``x1``, ...), outputs from what the model's ``predict`` returns
for it when the model has one and it succeeds. An example that says nothing about
fields is refused with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from registry.errors import InvalidInput

__all__ = ["infer_signature"]


def _type_name(value: Any) -> str:
    """The signature type of one value (numpy and pandas scalars by their kind)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, Mapping):
        return "dict"
    if isinstance(value, Sequence | set):
        return "list"
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    if kind is not None and getattr(value, "ndim", 0) == 0:
        return {"b": "bool", "i": "int", "u": "int", "f": "float", "U": "str", "O": "str"}.get(
            kind, "str"
        )
    if getattr(value, "ndim", 0):
        return "list"
    raise InvalidInput(f"input_example: cannot tell the type of {type(value).__name__!r} values")


def _dtype_name(dtype: Any) -> str:
    return {"b": "bool", "i": "int", "u": "int", "f": "float", "M": "str"}.get(
        getattr(dtype, "kind", ""), "str"
    )


def _fields(example: Any) -> dict[str, str]:
    columns = getattr(example, "columns", None)
    dtypes = getattr(example, "dtypes", None)
    if columns is not None and dtypes is not None:  # a pandas DataFrame
        return {str(c): _dtype_name(t) for c, t in zip(columns, dtypes, strict=True)}
    if isinstance(example, Mapping):
        if not example:
            raise InvalidInput("input_example is an empty mapping: no fields to infer")
        return {str(k): _column_type(v) for k, v in example.items()}
    ndim, dtype = getattr(example, "ndim", None), getattr(example, "dtype", None)
    if ndim in (1, 2) and dtype is not None:  # a numpy array: one row, or rows
        width = example.shape[-1]
        return {f"x{i}": _dtype_name(dtype) for i in range(width)}
    if isinstance(example, Sequence) and not isinstance(example, str) and example:
        first = example[0]
        if isinstance(first, Mapping):  # records
            return _fields(first)
        return {f"x{i}": _type_name(v) for i, v in enumerate(example)}
    raise InvalidInput(
        "input_example must be a mapping of fields, a list of records, a DataFrame or an "
        f"array, not {type(example).__name__!r}"
    )


def _column_type(value: Any) -> str:
    """A mapping's value: one value, or a column of them (``{"amount": [1.0, 2.5]}``)."""
    if isinstance(value, Sequence) and not isinstance(value, str) and value:
        return _common({_type_name(v) for v in value})
    return _type_name(value)


def _common(kinds: set[str]) -> str:
    """One type for a column's values: ints mixed with floats are floats."""
    if len(kinds) == 1:
        return kinds.pop()
    return "float" if kinds == {"int", "float"} else "str"


def _outputs(model: Any, example: Any) -> dict[str, str]:
    """What ``model.predict(example)`` returns, typed; nothing when it cannot be asked."""
    predict = getattr(model, "predict", None)
    if not callable(predict):
        return {}
    try:
        prediction = predict(example)
    except Exception:  # a model that cannot predict on the example: outputs unknown
        return {}
    if isinstance(prediction, Mapping):
        return {str(k): _column_type(v) for k, v in prediction.items()}
    if getattr(prediction, "columns", None) is not None:  # a DataFrame of outputs
        return _fields(prediction)
    if getattr(prediction, "ndim", 0) or isinstance(prediction, Sequence):
        items = list(prediction.ravel() if hasattr(prediction, "ravel") else prediction)
        if not items:
            return {}
        return {"prediction": _common({_type_name(v) for v in items})}
    return {"prediction": _type_name(prediction)}


def infer_signature(example: Any, model: Any = None) -> dict[str, Any]:
    """``{"inputs": ..., "outputs": ...}`` from ``example`` (see the module docstring)."""
    return {"inputs": _fields(example), "outputs": _outputs(model, example)}
