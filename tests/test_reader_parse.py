"""SQLite window reads parse each column's text (one value a line): small columns by NumPy,
large ones and anything NumPy cannot read whole by Arrow's CSV reader; both give one answer."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from feedback_loop.store import reader


def _arrow(text: str, kind: pa.DataType) -> np.ndarray:
    """The Arrow reader alone (the parse every text took before the NumPy path)."""
    small = reader._SMALL_FLOATS
    try:
        reader._SMALL_FLOATS = 0
        if kind == pa.int64():  # NumPy reads whole numbers at any length: make it fail
            return reader._numpy(
                reader.pa_csv.read_csv(
                    reader.io.BytesIO(text.encode()),
                    read_options=reader.pa_csv.ReadOptions(column_names=["v"]),
                    parse_options=reader.pa_csv.ParseOptions(delimiter="\x1f", quote_char=False),
                    convert_options=reader.pa_csv.ConvertOptions(column_types={"v": kind}),
                ).column("v"),
                kind,
            )
        return reader._parse_lines(text, kind)
    finally:
        reader._SMALL_FLOATS = small


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        ([0, -1, 7, 2**62, -(2**63)], pa.int64()),
        ([1_700_000_000_000_000 + i for i in range(5_000)], pa.int64()),
        ([0.5, -1.0, 1e-300, 1.7976931348623157e308, 0.1 + 0.2], pa.float64()),
        ([i / 7 for i in range(3_000)], pa.float64()),  # past the small-column length
        (["v", "v2", "vé", "va b", "v'q'", 'v"x"'], pa.string()),
        ([f"v{i}" for i in range(4_000)], pa.string()),
    ],
)
def test_numpy_and_arrow_parse_a_column_alike(values: list[object], kind: pa.DataType) -> None:
    text = "\n".join(repr(v) if isinstance(v, float) else str(v) for v in values)
    parsed = reader._parse_lines(text, kind)
    expected = _arrow(text, kind)
    assert parsed.dtype == expected.dtype and len(parsed) == len(values)
    assert parsed.tolist() == expected.tolist()
    if kind == pa.string():
        assert parsed.tolist() == [str(v)[1:] for v in values]  # the 'v' prefix dropped
    else:
        assert parsed.tolist() == values


def test_a_text_numpy_cannot_read_whole_goes_to_arrow() -> None:
    assert reader._parse_numbers("1\n\n2", np.float64) is None
    assert reader._parse_lines("1\n\n2", pa.float64()).tolist() == [1.0, 2.0]  # Arrow's reading
    for text, kind in (("1\n2.5", pa.int64()), ("1\nx", pa.float64())):
        assert reader._parse_numbers(text, kind.to_pandas_dtype()) is None
        with pytest.raises(pa.ArrowInvalid):  # Arrow names the value it cannot read
            reader._parse_lines(text, kind)
