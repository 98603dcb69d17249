"""Row readers for the original benchmark files, with errors that name file and line."""
from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path
from typing import Any, Iterator, Literal, overload

from softprompt.tasks.base import DataError


class DataWarning(UserWarning):
    """Rows of a data file were skipped (the message says how many, and where)."""


def require_file(path: Path) -> Path:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    return path


@overload
def read_tsv(path: Path, header: Literal[True] = True) -> Iterator[tuple[int, dict[str, str]]]: ...
@overload
def read_tsv(path: Path, header: Literal[False]) -> Iterator[tuple[int, list[str]]]: ...
def read_tsv(path: Path, header: bool = True) -> Iterator[tuple[int, Any]]:
    """Yield (line_number, row) from a tab-separated file; dict rows when it has a header.

    No quoting (GLUE's files contain bare quote characters); a UTF-8 byte-order mark (as in
    msr_paraphrase_train.txt) is dropped.
    """
    require_file(path)
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        columns: list[str] | None = None
        for line_no, row in enumerate(reader, start=1):
            if header and columns is None:
                columns = row
                continue
            if columns is None:
                yield line_no, row
            else:
                if len(row) != len(columns):
                    raise DataError(
                        f"{path}:{line_no}: expected {len(columns)} tab-separated fields "
                        f"({', '.join(columns)}), found {len(row)}"
                    )
                yield line_no, dict(zip(columns, row))


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line_number, object) from a JSON-lines file (gzip if it ends in .gz)."""
    require_file(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{line_no}: not valid JSON ({err.msg})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{line_no}: expected a JSON object, got {type(obj).__name__}")
            yield line_no, obj


def read_csv(path: Path, delimiter: str = ",") -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line_number, row dict) from a CSV file with a header row (standard quoting).

    line_number is the line where the record starts (a quoted field may span lines).
    """
    require_file(path)
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter)
        columns: list[str] | None = None
        start = 1
        for row in reader:
            line_no, start = start, reader.line_num + 1
            if columns is None:
                columns = [c.strip() for c in row]
                if not any(columns):
                    raise DataError(f"{path}:{line_no}: the first line should be a header naming the columns")
                continue
            if not row or row == [""]:
                continue
            if len(row) != len(columns):
                raise DataError(
                    f"{path}:{line_no}: expected {len(columns)} fields ({', '.join(columns)}), found {len(row)}"
                )
            yield line_no, dict(zip(columns, row))


def _field_name(name: str, where: str) -> str:
    return f"{where}.{name}" if where else name


def field(
    row: dict[str, Any],
    name: str,
    path: Path,
    line_no: int,
    kind: type | tuple[type, ...] = str,
    where: str = "",
) -> Any:
    """row[name], checked for presence and type; errors name file, line and field.

    `where` names the enclosing object of a nested field (e.g. 'qas[3]'), so the error
    reads 'field qas[3].question'.
    """
    label = _field_name(name, where)
    if not isinstance(row, dict):
        raise DataError(f"{path}:{line_no}: {where or 'row'} should be a JSON object, got {type(row).__name__}")
    if name not in row:
        raise DataError(f"{path}:{line_no}: missing field {label!r}")
    value = row[name]
    # bool is an int subclass: a field that should hold a number must not accept true/false
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in kinds):
        raise DataError(
            f"{path}:{line_no}: field {label!r} should be {'/'.join(k.__name__ for k in kinds)}, "
            f"got {type(value).__name__} {value!r:.60}"
        )
    return value


def text_field(row: dict[str, Any], name: str, path: Path, line_no: int, where: str = "") -> str:
    """A string field that must not be empty or blank; returned stripped."""
    value = field(row, name, path, line_no, str, where)
    if not value.strip():
        raise DataError(f"{path}:{line_no}: field {_field_name(name, where)!r} is empty")
    return value.strip()


def bool_field(row: dict[str, Any], name: str, path: Path, line_no: int, where: str = "") -> bool:
    """A boolean label: JSON true/false, or 0/1."""
    value = field(row, name, path, line_no, (bool, int), where)
    if isinstance(value, bool):
        return value
    if value in (0, 1):
        return bool(value)
    raise DataError(f"{path}:{line_no}: field {_field_name(name, where)!r} should be true/false or 0/1, got {value!r}")


def choice_field(row: dict[str, Any], name: str, path: Path, line_no: int, choices: tuple, where: str = "") -> Any:
    """A field whose value must be one of `choices` (e.g. a label string)."""
    if name not in row:
        raise DataError(f"{path}:{line_no}: missing field {_field_name(name, where)!r}")
    value = row[name]
    if isinstance(value, bool) or value not in choices:
        raise DataError(
            f"{path}:{line_no}: field {_field_name(name, where)!r} should be one of "
            f"{', '.join(map(repr, choices))}, got {value!r:.60}"
        )
    return value
