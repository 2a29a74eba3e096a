import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyconvex import ids

_TO_CROCKFORD = str.maketrans(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", "0123456789abcdefghjkmnpqrstvwxyz"
)


@given(st.binary(min_size=20, max_size=20))
def test_encoding_is_base32_in_crockfords_alphabet(raw: bytes) -> None:
    assert ids.encode(raw) == base64.b32encode(raw).decode().translate(_TO_CROCKFORD)


def test_ids_know_their_table_and_reject_typos() -> None:
    doc_id = ids.new_id("users")
    assert ids.is_id_of(doc_id, "users") and not ids.is_id_of(doc_id, "items")
    assert not ids.is_id(doc_id.upper())
    typo = doc_id[:-1] + ("0" if doc_id[-1] != "0" else "1")
    assert not ids.is_id(typo)
    assert not ids.is_id("i" * 32) and not ids.is_id(doc_id[:-2]) and not ids.is_id(None)


def test_ids_of_later_milliseconds_sort_after_and_stay_unguessable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made = []
    for ms in (1_700_000_000_000, 1_700_000_000_001, 1_800_000_000_000):
        monkeypatch.setattr(ids.time, "time", lambda ms=ms: ms / 1000)
        made.append([ids.new_id("items") for _ in range(50)])
    # Every id of a later millisecond sorts after every id of an earlier one...
    assert max(made[0]) < min(made[1]) and max(made[1]) < min(made[2])
    # ...and within one millisecond they differ in their 64 random bits.
    assert len(set(made[0])) == 50


@given(st.text(max_size=40))
def test_anything_that_is_not_an_id_is_refused_without_an_error(text: str) -> None:
    assert ids.is_id(text) is (ids._decode(text) is not None)


@given(st.binary(min_size=18, max_size=18))
def test_every_well_formed_id_decodes_to_its_bytes(body: bytes) -> None:
    raw = body + ids._checksum(body)
    assert ids._decode(ids.encode(raw)) == raw
