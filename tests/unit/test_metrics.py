"""A job's metrics file read into series, and a series drawn as a terminal chart."""

from __future__ import annotations

import json

from ailabber.model.chart import MIN_PLOT_WIDTH, chart
from ailabber.model.metrics import SKIP_REASONS, parse

BRAILLE = range(0x2800, 0x2900)


def _lines(*objs: object) -> bytes:
    return b"".join(json.dumps(o).encode() + b"\n" for o in objs)


def test_each_key_but_step_is_a_series_against_step() -> None:
    m = parse(_lines({"step": 10, "loss": 0.5, "acc": 0.1}, {"step": 20, "loss": 0.25}, {"step": 30, "acc": 0.7}))
    assert list(m.series) == ["loss", "acc"]
    assert m.series["loss"].points == [(10, 0.5), (20, 0.25)]
    assert m.series["acc"].points == [(10, 0.1), (30, 0.7)]
    assert m.series["acc"].last == (30, 0.7) and m.series["acc"].x_name() == "step"
    assert m.lines == 3 and m.skipped == {} and m.skipped_text() == ""


def test_without_step_x_is_the_line_number() -> None:
    m = parse(b'{"loss": 3}\n\nnot json\n{"loss": 1.5}\n')
    assert m.series["loss"].points == [(1, 3), (4, 1.5)]
    assert m.series["loss"].x_name() == "line"
    mixed = parse(b'{"loss": 3}\n{"step": 7, "loss": 2}\n')
    assert mixed.series["loss"].points == [(1, 3), (7, 2)]
    assert mixed.series["loss"].x_name() == "x"


def test_what_cannot_be_read_is_skipped_and_counted() -> None:
    data = (b'{"step": 1, "loss": 0.5, "tag": "warmup", "ok": true, "nested": {"a": 1}, "none": null}\n'
            b"garbage line\n"
            b"[1, 2]\n"
            b'"just a string"\n'
            b'\xff\xfe{"loss": 1}\n'
            b'{"step": "ten", "loss": 0.4}\n'
            b'{"step": NaN, "loss": 0.4}\n'
            b'{"step": 2, "loss": NaN, "acc": Infinity, "lr": -Infinity, "big": 1' + b"0" * 400 + b"}\n"
            + b"[" * 100_000 + b"\n"
            b'{"step": 3, "loss": 0.25}\n'
            b'{"step": 4, "lo')
    m = parse(data)
    assert m.series["loss"].points == [(1, 0.5), (3, 0.25)]
    assert list(m.series) == ["loss"]
    assert m.skipped == {"non_numeric": 4, "not_json": 3, "not_object": 2, "bad_step": 2, "non_finite": 4,
                         "partial_line": 1}
    text = m.skipped_text()
    assert text.startswith("skipped: 1 partial last line")
    assert "3 lines that are not JSON" in text and "4 NaN or infinite values" in text
    assert set(m.to_dict()["skipped"]) == set(SKIP_REASONS)


def test_a_partial_last_line_is_left_for_the_next_read() -> None:
    whole = _lines({"step": 1, "loss": 1.0}, {"step": 2, "loss": 0.5})
    for cut in range(len(whole)):
        m = parse(whole[:cut])
        points = m.series["loss"].points if "loss" in m.series else []
        assert len(points) == whole[:cut].count(b"\n")
        assert m.skipped == ({"partial_line": 1} if cut and not whole[:cut].endswith(b"\n") else {})


def test_only_keeps_the_named_series_and_json_has_the_points() -> None:
    m = parse(_lines({"step": 1, "loss": 2, "acc": 0.5}, {"step": 2, "loss": 1, "acc": 0.75}))
    d = m.only(["acc"]).to_dict()
    assert list(d["series"]) == ["acc"]
    assert d["series"]["acc"] == {"last": 0.75, "last_x": 2, "x": "step", "count": 2, "min": 0.5, "max": 0.75,
                                  "points": [[1, 0.5], [2, 0.75]]}
    assert json.loads(json.dumps(d)) == d


def _plot(lines: list[str]) -> list[str]:
    """The plot rows of a chart, without the y labels and axis."""
    return [line.split("┤", 1)[-1].split("│", 1)[-1] for line in lines[:-2]]


def test_chart_fits_the_width_and_draws_a_falling_line() -> None:
    points = [(i, 100.0 - i) for i in range(101)]
    lines = chart(points, 60, 6, x_name="step")
    assert len(lines) == 8 and all(len(line) <= 60 for line in lines)
    assert max(len(line) for line in lines) >= 58
    assert lines[0].startswith("100 ┤") and lines[5].startswith("  0 ┤")
    assert lines[-2].startswith("    └─") and lines[-1].split() == ["0", "100", "step"]
    rows = _plot(lines)
    assert all(ord(c) in BRAILLE for row in rows for c in row.strip())
    # a falling line: each row's first dot is right of the row above's
    starts = [len(row) - len(row.lstrip()) for row in rows]
    assert starts == sorted(starts) and starts[0] == 0 and starts[-1] > 40


def test_chart_keeps_a_spike_among_many_points_and_joins_columns() -> None:
    points = [(float(i), 0.0) for i in range(100_000)]
    points[50_000] = (50_000.0, 1.0)
    lines = chart(points, 40, 4)
    rows = _plot(lines)
    assert rows[0].strip() != ""                           # the spike reaches the top row
    assert len(rows[-1]) >= 30                             # the flat line runs along the bottom


def test_chart_of_one_value_or_one_point_and_a_narrow_terminal() -> None:
    flat = chart([(1, 5), (2, 5), (3, 5)], 30, 4)
    labelled = [line for line in flat[:-2] if "┤" in line]
    assert len(labelled) == 1 and labelled[0].startswith("5 ┤")
    one = chart([(7, 0.5)], 30, 4)
    assert sum(1 for c in "".join(one) if ord(c) in BRAILLE) == 1
    narrow = chart([(0, 1), (1, 2)], 5, 3)
    assert max(len(line) for line in narrow) >= MIN_PLOT_WIDTH


def test_chart_of_values_as_far_apart_as_floats_go() -> None:
    lines = chart([(-1.7e308, -1.7e308), (0, 0), (1.7e308, 1.7e308)], 40, 4)
    assert lines[0].startswith(" 1.7e+308 ┤") and lines[3].startswith("-1.7e+308 ┤")


def test_ascii_chart_uses_plain_characters() -> None:
    lines = chart([(i, i * i) for i in range(20)], 50, 5, ascii=True, x_name="line")
    assert all(ord(c) < 128 for line in lines for c in line)
    assert "*" in "".join(lines) and lines[-2].lstrip().startswith("+-")
