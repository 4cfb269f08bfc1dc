"""The store on bad input: a refused photo leaves no row and no file; a locked, read-only or
unwritable database gives a named error and loses nothing; a phone photo is stored upright
in its size and untouched in its bytes."""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import sqlite3
import struct
import subprocess
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.errors import PhotoError
from lesionviewer.store import DB_NAME, Store, StoreError, StoreLockedError, StoreReadOnlyError
from tests.lesionviewer.store_samples import write_photo


def _stored_files(data_dir: Path) -> list[Path]:
    photos = data_dir / "photos"
    return sorted(p for p in photos.rglob("*") if p.is_file()) if photos.is_dir() else []


def _photo_rows(data_dir: Path) -> int:
    with contextlib.closing(sqlite3.connect(data_dir / DB_NAME)) as conn:
        return conn.execute("SELECT COUNT(*) FROM photo").fetchone()[0]


@pytest.fixture
def visit(tmp_path: Path) -> Iterator[tuple[Store, int]]:
    data_dir = tmp_path / "store"
    store = Store.open(data_dir, actor="qa")
    patient = store.add_patient("Sample Patient")
    visit_id = store.add_visit(patient.id, "2024-05-01").id
    yield store, visit_id
    store.close()


def _jpeg(path: Path, seed: int = 0, size: tuple[int, int] = (64, 48)) -> Path:
    rng = np.random.default_rng(seed)
    pixels = np.clip(
        np.full((size[1], size[0], 3), 150) + rng.integers(-40, 40, (size[1], size[0], 3)), 0, 255
    ).astype(np.uint8)
    Image.fromarray(pixels).save(path, quality=90)
    return path


def _garbled(path: Path) -> Path:
    data = bytearray(_jpeg(path.with_name("clean.jpg")).read_bytes())
    data[len(data) // 2 : len(data) // 2 + 400] = np.random.default_rng(3).bytes(400)
    path.write_bytes(bytes(data))
    return path


def _truncated(path: Path) -> Path:
    data = _jpeg(path.with_name("whole.jpg"), 1).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _bomb(path: Path) -> Path:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 60_000, 60_000, 8, 2, 0, 0, 0)
    idat = zlib.compress(bytes(100_000))
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    return path


def _heic_named_jpg(path: Path) -> Path:
    path.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(500))
    return path


def _heic(path: Path) -> Path:
    return _heic_named_jpg(path)


def _empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


BAD: list[tuple[str, Callable[[Path], Path], str]] = [
    ("garbled.jpg", _garbled, "corrupt JPEG data"),
    ("cut.jpg", _truncated, "truncated JPEG"),
    ("bomb.png", _bomb, "photo too large (60000x60000"),
    ("IMG_0007.HEIC", _heic, "unsupported file type .heic"),
    ("IMG_0008.jpg", _heic_named_jpg, "HEIC/HEIF photos are not supported"),
    ("empty.jpg", _empty, "empty file"),
]


@pytest.mark.parametrize(("name", "make", "reason"), BAD, ids=[b[0] for b in BAD])
def test_refused_photo_leaves_no_row_and_no_file(
    visit: tuple[Store, int], tmp_path: Path, name: str, make, reason: str
) -> None:
    store, visit_id = visit
    bad = make(tmp_path / name)
    before = bad.read_bytes()
    with pytest.raises(PhotoError) as info:
        store.import_photo(visit_id, bad)
    assert str(info.value).startswith(f"{name}: ") and reason in str(info.value)
    assert store.list_photos(visit_id) == [] and _photo_rows(store.data_dir) == 0
    assert _stored_files(store.data_dir) == []
    assert bad.read_bytes() == before  # the user's file is untouched


def test_a_bad_file_in_a_batch_keeps_the_good_ones_before_it(
    visit: tuple[Store, int], tmp_path: Path
) -> None:
    store, visit_id = visit
    good = write_photo(tmp_path / "good.png", 1)
    with pytest.raises(PhotoError, match="cut.jpg"):
        store.import_photos(visit_id, [good, _truncated(tmp_path / "cut.jpg")])
    assert [p.original_name for p in store.list_photos(visit_id)] == ["good.png"]
    assert len(_stored_files(store.data_dir)) == 1


@pytest.mark.parametrize("orientation", [6, 8])
def test_phone_photo_with_exif_rotation(
    visit: tuple[Store, int], tmp_path: Path, orientation: int
) -> None:
    """Stored width/height are as displayed; the stored file is the original, byte for byte."""
    store, visit_id = visit
    pixels = np.random.default_rng(5).integers(0, 256, (30, 80, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)  # stored landscape 80x30, displayed portrait
    exif = image.getexif()
    exif[0x0112] = orientation
    exif[0x010F] = "PhoneMaker"
    source = tmp_path / "IMG_1234.JPG"
    image.save(source, exif=exif, quality=92)
    original = source.read_bytes()
    photo = store.import_photo(visit_id, source).photo
    assert (photo.width, photo.height) == (30, 80)
    stored = _stored_files(store.data_dir)
    assert len(stored) == 1 and stored[0].read_bytes() == original
    digest = hashlib.sha256(original).hexdigest()
    assert photo.sha256 == digest == stored[0].parent.name + stored[0].stem
    assert source.read_bytes() == original
    with Image.open(stored[0]) as again:  # the EXIF orientation tag is still there
        assert again.getexif()[0x0112] == orientation


def test_import_into_a_read_only_store_writes_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "store"
    with Store.open(data_dir) as store:
        visit_id = store.add_visit(store.add_patient("Sample Patient").id, "2024-05-01").id
    photo = write_photo(tmp_path / "p.png", 2)
    with Store.open(data_dir, readonly=True) as store:
        with pytest.raises(StoreReadOnlyError) as info:
            store.import_photo(visit_id, photo)
    assert DB_NAME in str(info.value) and "read-only" in str(info.value)
    assert _photo_rows(data_dir) == 0 and _stored_files(data_dir) == []


def test_import_while_another_program_locks_the_database(tmp_path: Path) -> None:
    data_dir = tmp_path / "store"
    store = Store.open(data_dir, busy_timeout_ms=100)
    visit_id = store.add_visit(store.add_patient("Sample Patient").id, "2024-05-01").id
    other = sqlite3.connect(data_dir / DB_NAME, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreLockedError) as info:
            store.import_photo(visit_id, write_photo(tmp_path / "p.png", 3))
        assert DB_NAME in str(info.value) and "locked" in str(info.value)
        assert _stored_files(data_dir) == []
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert store.import_photo(visit_id, tmp_path / "p.png").duplicate is False  # retry works
    assert _photo_rows(data_dir) == 1 and len(_stored_files(data_dir)) == 1
    store.close()


@contextlib.contextmanager
def _immutable(path: Path) -> Iterator[None]:
    """``chattr +i``: unwritable even for root (plain chmod is not). Skips where unavailable."""
    chattr = shutil.which("chattr")
    if chattr is None:
        pytest.skip("chattr not available")
    done = subprocess.run([chattr, "+i", str(path)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"chattr +i refused here ({done.stderr.decode().strip()})")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


def test_database_file_that_cannot_be_written(tmp_path: Path) -> None:
    data_dir = tmp_path / "store"
    with Store.open(data_dir) as store:
        store.add_patient("Sample Patient")
    with _immutable(data_dir / DB_NAME):
        with pytest.raises(StoreReadOnlyError, match=f"{DB_NAME}: .*read-only"):
            Store.open(data_dir)
        with Store.open(data_dir, readonly=True) as store:  # reading still works
            assert [p.name for p in store.list_patients()] == ["Sample Patient"]


def test_data_folder_that_cannot_be_written(tmp_path: Path) -> None:
    data_dir = tmp_path / "store"
    with Store.open(data_dir) as store:
        visit_id = store.add_visit(store.add_patient("Sample Patient").id, "2024-05-01").id
    photo = write_photo(tmp_path / "p.png", 4)
    with _immutable(data_dir):
        with pytest.raises(StoreReadOnlyError, match="read-only"):
            Store.open(data_dir)
    (data_dir / "photos").mkdir(exist_ok=True)
    with Store.open(data_dir) as store, _immutable(data_dir / "photos"):
        with pytest.raises(PhotoError, match=r"p\.png: cannot store a copy"):
            store.import_photo(visit_id, photo)
        assert store.list_photos(visit_id) == []
    assert _stored_files(data_dir) == []


def test_corrupt_database_is_named_and_left_alone(tmp_path: Path) -> None:
    data_dir = tmp_path / "store"
    with Store.open(data_dir) as store:
        store.add_patient("Sample Patient")
    db = data_dir / DB_NAME
    data = bytearray(db.read_bytes())
    data[:16] = b"not sqlite here!"
    db.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=f"{DB_NAME}: .*corrupt"):
        Store.open(data_dir)
    assert db.read_bytes()[:16] == b"not sqlite here!"  # nothing overwritten or recreated
