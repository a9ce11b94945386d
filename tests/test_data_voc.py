"""Pascal VOC through its data card: a small VOCtrainval tar in the real layout (VOCdevkit/VOC2012 with XML
annotations, JPEG images and ImageSets/Main lists) is fetched from a local mirror by `alb data fetch`, checked
against the card's md5 and unpacked; alb's VOC loader then reads it without any download, boxes scaled to
300x300 and classes numbered as VOC's list (1-based: 0 is the detector's background)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from data_server import data_server
from PIL import Image

from benchmark import cli
from benchmark.data import cards as cards_module
from benchmark.data.fetch import MIRROR_ENV

# (file id, width, height, objects as (class, xmin, ymin, xmax, ymax, difficult)), split
IMAGES = [("2008_000001", 100, 50, [("dog", 11, 6, 60, 45, 0)], "train"),
          ("2008_000002", 80, 80, [("cat", 1, 1, 40, 40, 0), ("person", 41, 10, 80, 70, 1)], "train"),
          ("2008_000003", 60, 40, [("car", 5, 5, 30, 20, 0)], "val")]


def _xml(name: str, width: int, height: int, objects: list[tuple[str, int, int, int, int, int]]) -> bytes:
    parts = [f"<annotation><filename>{name}.jpg</filename><size><width>{width}</width><height>{height}</height>"
             "<depth>3</depth></size>"]
    for cls, x1, y1, x2, y2, difficult in objects:
        parts.append(f"<object><name>{cls}</name><difficult>{difficult}</difficult><bndbox><xmin>{x1}</xmin>"
                     f"<ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>")
    return ("".join(parts) + "</annotation>").encode()


def voc2012_tar() -> bytes:
    buffer = io.BytesIO()
    base = "VOCdevkit/VOC2012"

    def add(tar: tarfile.TarFile, name: str, body: bytes) -> None:
        info = tarfile.TarInfo(f"{base}/{name}")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))

    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, width, height, objects, _ in IMAGES:
            image = io.BytesIO()
            Image.new("RGB", (width, height), (200, 30, 30)).save(image, format="JPEG")
            add(tar, f"JPEGImages/{name}.jpg", image.getvalue())
            add(tar, f"Annotations/{name}.xml", _xml(name, width, height, objects))
        for split in ("train", "val"):
            add(tar, f"ImageSets/Main/{split}.txt", "".join(f"{n}\n" for n, *_, s in IMAGES if s == split).encode())
    return buffer.getvalue()


@pytest.fixture
def small_voc2012(monkeypatch: pytest.MonkeyPatch) -> bytes:
    archive = voc2012_tar()
    card = cards_module.CARDS["voc2012"]
    file = dataclasses.replace(card.files[0], checksum=f"md5:{hashlib.md5(archive).hexdigest()}")
    monkeypatch.setitem(cards_module.CARDS, "voc2012", dataclasses.replace(card, files=(file,)))
    return archive


def test_voc2012_is_fetched_by_its_card_and_loaded_offline(tmp_path: Path, small_voc2012: bytes,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from benchmark.detection.voc import CLASSES, load_voc

    data = tmp_path / "data"
    with data_server() as server:
        server.files["voc2012/VOCtrainval_11-May-2012.tar"] = small_voc2012
        monkeypatch.setenv(MIRROR_ENV, server.url)
        assert cli.main(["data", "fetch", "voc2012", "--data-dir", str(data)]) == 0
        assert server.gets["voc2012/VOCtrainval_11-May-2012.tar"] == 1
    assert "md5 verified" in capsys.readouterr().out
    assert (data / "voc2012" / "VOCdevkit" / "VOC2012" / "ImageSets" / "Main" / "val.txt").is_file()
    monkeypatch.setenv(MIRROR_ENV, "http://127.0.0.1:9")  # offline from here on: the loader must not download
    voc = load_voc("2012", data)
    assert tuple(voc.train_x.shape) == (2, 3, 300, 300) and tuple(voc.test_x.shape) == (1, 3, 300, 300)
    # 1-based inclusive corners -> pixel edges, scaled from 100x50 to 300x300
    assert np.allclose(voc.train_boxes[0].numpy(), [[10 * 3, 5 * 6, 60 * 3, 45 * 6]])
    assert voc.train_labels[0].tolist() == [CLASSES.index("dog") + 1]
    assert voc.train_labels[1].tolist() == [CLASSES.index("cat") + 1, CLASSES.index("person") + 1]
    assert voc.test_labels[0].tolist() == [CLASSES.index("car") + 1]


def test_voc_offline_is_one_message_naming_the_tar(tmp_path: Path) -> None:
    from benchmark.detection.voc import load_voc
    from benchmark.errors import DatasetUnavailableError

    expected = r"(?s)VOCtest_06-Nov-2007\.tar.*alb data fetch voc2007"
    with pytest.raises(DatasetUnavailableError, match=expected) as caught:
        load_voc("2007", tmp_path)
    assert "VOCtrainval_06-Nov-2007.tar" in str(caught.value)  # both of VOC 2007's tars, in one message
