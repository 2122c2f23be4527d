"""Accepted data layouts and their errors."""

import shutil
from pathlib import Path

import pytest

from training.data import (DataLayoutError, discover_splits, list_labelled_folder, load_images,
                           stratified_split)


def make_labelled(root: Path, sample_files, per_class: int = 3) -> Path:
    for label, files in sample_files.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for f in files[:per_class]:
            shutil.copy(f, root / label / f.name)
    return root


def test_seed_layout_train_and_test_folders(tmp_path, sample_files):
    make_labelled(tmp_path / "train", sample_files)
    make_labelled(tmp_path / "test", sample_files, per_class=2)
    splits = discover_splits(tmp_path)
    assert sorted(splits) == ["test", "train"]
    assert len(splits["train"]) == 6 and len(splits["test"]) == 4
    assert sorted(set(splits["train"].labels)) == [0, 1]


def test_splits_csv_layout(tmp_path, sample_files):
    make_labelled(tmp_path, sample_files, per_class=4)
    rows = ["path,label,split"]
    for label in ("normal", "glaucoma"):
        names = sorted(p.name for p in (tmp_path / label).iterdir())
        rows += [f"{label}/{names[0]},{label},train", f"{label}/{names[1]},{label},train",
                 f"{label}/{names[2]},{label},val", f"{label}/{names[3]},{label},test"]
    (tmp_path / "splits.csv").write_text("\n".join(rows) + "\n")
    splits = discover_splits(tmp_path)
    assert {k: len(v) for k, v in splits.items()} == {"train": 4, "val": 2, "test": 2}


def test_unknown_class_in_splits_csv_is_a_clear_error(tmp_path, sample_files):
    make_labelled(tmp_path, sample_files, per_class=1)
    name = next((tmp_path / "normal").iterdir()).name
    (tmp_path / "splits.csv").write_text(f"path,label,split\nnormal/{name},suspect,train\n")
    with pytest.raises(DataLayoutError, match="unknown class 'suspect'"):
        discover_splits(tmp_path)


def test_missing_class_folder(tmp_path, sample_files):
    make_labelled(tmp_path, {"normal": sample_files["normal"]})
    with pytest.raises(DataLayoutError, match="no 'glaucoma/' folder"):
        list_labelled_folder(tmp_path)


def test_unknown_class_folder(tmp_path, sample_files):
    make_labelled(tmp_path, sample_files)
    (tmp_path / "cataract").mkdir()
    with pytest.raises(DataLayoutError, match="unknown class 'cataract'"):
        list_labelled_folder(tmp_path)


def test_empty_class_folder(tmp_path, sample_files):
    make_labelled(tmp_path, {"normal": sample_files["normal"]})
    (tmp_path / "glaucoma").mkdir()
    with pytest.raises(DataLayoutError, match="holds no images"):
        list_labelled_folder(tmp_path)


def test_unreadable_images_are_skipped_and_counted(tmp_path, sample_files, caplog):
    make_labelled(tmp_path, sample_files, per_class=2)
    (tmp_path / "glaucoma" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    loaded = load_images(list_labelled_folder(tmp_path), size=64)
    assert len(loaded.labels) == 4 and len(loaded.skipped) == 1
    assert loaded.skipped[0][0].name == "broken.jpg" and "not_an_image" in loaded.skipped[0][1]
    assert "broken.jpg" in caplog.text


def test_stratified_split_keeps_both_classes(tmp_path, sample_files):
    make_labelled(tmp_path, sample_files, per_class=6)
    keep, carve = stratified_split(list_labelled_folder(tmp_path), 0.34, seed=1)
    assert sorted(set(carve.labels)) == [0, 1] and len(keep) + len(carve) == 12
    assert not set(keep.paths) & set(carve.paths)
