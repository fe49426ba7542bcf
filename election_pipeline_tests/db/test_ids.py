"""Row ids: valid UUIDs that sort in the order they were made."""

import time
import uuid

from election_pipeline.db.models.base import new_ordered_uuid, new_uuid


def test_transaction_ids_are_version_7_uuids_that_sort_by_creation_time():
    ids = []
    for _ in range(3):
        ids += [new_ordered_uuid() for _ in range(1000)]
        time.sleep(0.002)  # ids of different milliseconds
    parsed = [uuid.UUID(i) for i in ids]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in parsed)
    assert [str(u) for u in parsed] == ids  # canonical lower-case text
    assert len(set(ids)) == len(ids)
    assert ids[999] < ids[1000] < ids[2000] < ids[-1]
    millis = [int(i.replace("-", "")[:12], 16) for i in (ids[0], ids[-1])]
    assert abs(millis[0] - time.time() * 1000) < 60_000 and millis[0] < millis[1]


def test_other_ids_are_random_version_4_uuids_with_distinct_prefixes():
    ids = [new_uuid() for _ in range(200)]
    assert all(uuid.UUID(i).version == 4 and str(uuid.UUID(i)) == i for i in ids)
    assert len({i[:8] for i in ids}) == len(ids)  # an 8-character prefix names one of them
