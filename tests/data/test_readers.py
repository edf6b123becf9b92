"""Low-level readers: decoding, formats and error messages that name file and line."""

from __future__ import annotations

import gzip
import pickle

import pytest

from spikeformers.data.examples import DataError
from spikeformers.data.readers import (
    decode_lines,
    get_text,
    infer_format,
    parse_label_sentence,
    read_lines,
    read_table,
)


def write(path, content: str | bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def test_data_error_message_names_path_and_line_and_survives_pickling():
    err = DataError("bad label 'x'", path="data/train.csv", line=7)
    assert str(err) == "data/train.csv:7: bad label 'x'"
    assert (err.path, err.line, err.reason) == ("data/train.csv", 7, "bad label 'x'")
    assert isinstance(err, ValueError)
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) and again.line == 7
    assert str(DataError("file is empty", path="a.txt")) == "a.txt: file is empty"


def test_decode_lines_handles_crlf_bom_and_final_newline():
    data = b"\xef\xbb\xbfone\r\ntwo\r\n\r\nthree\n"
    assert decode_lines(data, "f.txt") == ["one", "two", "", "three"]
    assert decode_lines(b"no newline at end", "f.txt") == ["no newline at end"]


def test_undecodable_byte_names_file_and_line_and_suggests_latin1(tmp_path):
    path = write(tmp_path / "reviews.txt", b"1 fine line\n0 also fine\n1 caf\xe9 au lait\n")
    with pytest.raises(DataError) as info:
        read_lines(path)
    message = str(info.value)
    assert message.startswith(f"{path}:3: cannot decode bytes b'\\xe9'")
    assert "latin-1" in message
    assert info.value.line == 3


def test_latin1_encoding_decodes_every_line(tmp_path):
    path = write(tmp_path / "reviews.txt", b"1 caf\xe9 au lait\n0 na\xefve\n")
    assert read_lines(path, encoding="latin-1") == ["1 café au lait", "0 naïve"]


def test_utf16_file_is_read(tmp_path):
    path = write(tmp_path / "t.csv", "label,sentence\n1,héllo\n".encode("utf-16"))
    columns, rows = read_table(path, encoding="utf-16")
    assert columns == ["label", "sentence"]
    assert rows[0].values == {"label": "1", "sentence": "héllo"}


@pytest.mark.parametrize("content", [b"", b"\n  \n\t\n"])
def test_empty_file_names_the_file(tmp_path, content):
    path = write(tmp_path / "empty.csv", content)
    with pytest.raises(DataError, match="empty") as info:
        read_table(path)
    assert str(info.value).startswith(str(path))


def test_missing_file_names_it(tmp_path):
    path = tmp_path / "nope.tsv"
    with pytest.raises(DataError, match="file not found") as info:
        read_table(path)
    assert str(path) in str(info.value)


def test_unknown_extension_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match=r"unknown file format '\.xlsx'"):
        infer_format(tmp_path / "train.xlsx")
    assert infer_format("a/b/train.jsonl.gz") == "jsonl"
    assert infer_format("train.TSV") == "tsv"


def test_label_sentence_splits_at_first_space_and_skips_blank_lines():
    lines = ["1 a good movie , really", "", "0\tbad film", "4  spaced  out "]
    rows = parse_label_sentence(lines, "f")
    assert [(r.values["label"], r.values["sentence"], r.line) for r in rows] == [
        ("1", "a good movie , really", 1),
        ("0", "bad film", 3),
        ("4", "spaced  out", 4),
    ]


def test_csv_quoted_multiline_field_keeps_the_starting_line(tmp_path):
    text = 'label,review\n1,"line one\nline two, with comma"\n0,"say ""hi"""\n'
    columns, rows = read_table(write(tmp_path / "t.csv", text))
    assert columns == ["label", "review"]
    assert [r.line for r in rows] == [2, 4]
    assert rows[0].values["review"] == "line one\nline two, with comma"
    assert rows[1].values["review"] == 'say "hi"'
    assert rows[1].source == f"{tmp_path / 't.csv'}:4"


def test_csv_wrong_field_count_names_line(tmp_path):
    path = write(tmp_path / "t.csv", "label,sentence\n1,ok\n0,too,many\n")
    with pytest.raises(DataError, match="expected 2 fields") as info:
        read_table(path)
    assert str(info.value).startswith(f"{path}:3:")


def test_tsv_treats_quotes_as_text(tmp_path):
    path = write(tmp_path / "t.tsv", 'sentence\tlabel\nhe said "wow\t1\nplain\t0\n')
    columns, rows = read_table(path)
    assert columns == ["sentence", "label"]
    assert [r.values["sentence"] for r in rows] == ['he said "wow', "plain"]
    assert [r.line for r in rows] == [2, 3]


def test_jsonl_rows_and_bad_json_line(tmp_path):
    good = write(
        tmp_path / "t.jsonl", '{"sentence": "a", "label": 1}\n\n{"sentence": "b", "x": 2}\n'
    )
    columns, rows = read_table(good)
    assert columns == ["sentence", "label", "x"]
    assert [r.line for r in rows] == [1, 3]
    bad = write(
        tmp_path / "bad.jsonl", '{"sentence": "a", "label": 1}\n{"sentence": "b", label: 0}\n'
    )
    with pytest.raises(DataError, match="malformed JSON") as info:
        read_table(bad)
    assert str(info.value).startswith(f"{bad}:2:")
    not_object = write(tmp_path / "list.jsonl", '{"sentence": "a"}\n[1, 2]\n')
    with pytest.raises(DataError, match="expected a JSON object") as info:
        read_table(not_object)
    assert info.value.line == 2


def test_json_array_keeps_line_numbers(tmp_path):
    text = '[\n  {"sentence": "a", "label": 0},\n  {"sentence": "b",\n   "label": 1}\n]\n'
    columns, rows = read_table(write(tmp_path / "t.json", text))
    assert columns == ["sentence", "label"]
    assert [r.line for r in rows] == [2, 3]
    bad = write(tmp_path / "bad.json", '[\n {"sentence": "a"},\n {"sentence": }\n]\n')
    with pytest.raises(DataError, match="malformed JSON") as info:
        read_table(bad)
    assert info.value.line == 3


def test_gzip_file_is_decompressed(tmp_path):
    path = tmp_path / "t.csv.gz"
    path.write_bytes(gzip.compress(b"label,sentence\n1,zipped\n"))
    _, rows = read_table(path)
    assert rows[0].values == {"label": "1", "sentence": "zipped"}


def test_get_text_reports_empty_and_missing(tmp_path):
    path = write(tmp_path / "t.csv", "label,sentence\n1,   \n")
    _, rows = read_table(path)
    with pytest.raises(DataError, match="empty text in column 'sentence'") as info:
        get_text(rows[0], "sentence")
    assert str(info.value).startswith(f"{path}:2:")
    with pytest.raises(DataError, match=r"missing column 'text'; columns present: \['label'"):
        get_text(rows[0], "text")
