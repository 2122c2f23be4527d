"""The storage process's fixes to moto, checked against moto itself and against plain sorting."""

from __future__ import annotations

import copy
import json
import random

import pytest
from werkzeug.test import Client

from localcloud import storage

AUTH = "AWS4-HMAC-SHA256 Credential=local/20261122/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=x"
TABLE = "storage-test"


@pytest.fixture()
def dynamodb():
    """moto's app in this process, patched as the storage process patches it; undone afterwards."""
    from moto.dynamodb.models import dynamodb_backends
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    storage.patch_moto()
    client = Client(storage.JournalingApp(DomainDispatcherApplication(create_backend_app), None))

    def call(operation: str, body: dict, expect: int = 200) -> dict:
        response = client.post("/", data=json.dumps(body), headers={
            "X-Amz-Target": f"DynamoDB_20120810.{operation}", "Authorization": AUTH,
            "Content-Type": "application/x-amz-json-1.0"})
        assert response.status_code == expect, response.data
        return json.loads(response.data)

    call("CreateTable", {
        "TableName": TABLE, "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": a, "AttributeType": "S"} for a in ("id", "kind", "label", "at")],
        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
        "GlobalSecondaryIndexes": [
            {"IndexName": "by_at", "Projection": {"ProjectionType": "ALL"},
             "KeySchema": [{"AttributeName": "kind", "KeyType": "HASH"}, {"AttributeName": "at", "KeyType": "RANGE"}]},
            {"IndexName": "by_label", "Projection": {"ProjectionType": "ALL"},
             "KeySchema": [{"AttributeName": "label", "KeyType": "HASH"}, {"AttributeName": "at", "KeyType": "RANGE"}]}]})
    call.client = client
    yield call
    storage.unpatch_moto()
    dynamodb_backends["123456789012"]["us-east-1"].delete_table(TABLE)
    storage.INDEXES.__init__()


def item(i: int, at: str, label: str | None = "normal") -> dict:
    attrs = {"id": {"S": f"r{i}"}, "kind": {"S": "p"}, "at": {"S": at}, "n": {"N": str(i)},
             "blob": {"B": "aGVsbG8="}, "tags": {"L": [{"S": "a"}, {"N": "1"}]}}
    if label:
        attrs["label"] = {"S": label}
    return attrs


def sqs_client(app):
    """SQS's JSON protocol against a WSGI app: operation, body -> the answer (HTTP 200 asserted)."""
    sqs_auth = AUTH.replace("/dynamodb/", "/sqs/")

    def sqs(operation: str, body: dict) -> dict:
        response = Client(app).post("/", data=json.dumps(body), headers={
            "X-Amz-Target": f"AmazonSQS.{operation}", "Authorization": sqs_auth,
            "Content-Type": "application/x-amz-json-1.0"})
        assert response.status_code == 200, response.data
        return json.loads(response.data)

    return sqs


def all_pages(call, index: str, hash_attr: str, value: str, forward: bool, limit: int) -> list[str]:
    ids, start = [], None
    while True:
        body = {"TableName": TABLE, "IndexName": index, "KeyConditionExpression": "#k = :v",
                "ExpressionAttributeNames": {"#k": hash_attr}, "ExpressionAttributeValues": {":v": {"S": value}},
                "ScanIndexForward": forward, "Limit": limit}
        if start:
            body["ExclusiveStartKey"] = start
        page = call("Query", body)
        ids += [i["id"]["S"] for i in page["Items"]]
        start = page.get("LastEvaluatedKey")
        if not start:
            return ids


def test_gsi_queries_page_in_order_through_writes_updates_and_deletes(dynamodb):
    rng = random.Random(7)
    rows = {}
    for i in range(150):
        at = f"2026-11-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}"  # ties on purpose
        label = rng.choice(["normal", "glaucoma", None])
        dynamodb("PutItem", {"TableName": TABLE, "Item": item(i, at, label)})
        rows[f"r{i}"] = (at, label)
    for i in range(0, 150, 7):  # relabel some, delete others
        dynamodb("UpdateItem", {"TableName": TABLE, "Key": {"id": {"S": f"r{i}"}},
                                "UpdateExpression": "SET label = :l", "ExpressionAttributeValues": {":l": {"S": "glaucoma"}}})
        rows[f"r{i}"] = (rows[f"r{i}"][0], "glaucoma")
    for i in range(3, 150, 11):
        dynamodb("DeleteItem", {"TableName": TABLE, "Key": {"id": {"S": f"r{i}"}}})
        rows.pop(f"r{i}", None)

    def expected(ids, forward):
        return sorted(ids, key=lambda i: (rows[i][0], i), reverse=not forward)

    for forward in (False, True):
        for limit in (1, 7, 50):
            assert all_pages(dynamodb, "by_at", "kind", "p", forward, limit) == expected(rows, forward)
        glaucoma = [i for i, (_, label) in rows.items() if label == "glaucoma"]
        assert all_pages(dynamodb, "by_label", "label", "glaucoma", forward, 9) == expected(glaucoma, forward)


def test_fast_answers_are_the_json_moto_itself_writes(dynamodb):
    from moto.dynamodb.responses import DynamoHandler

    requests = [
        ("PutItem", {"TableName": TABLE, "Item": item(1, "a")}),
        ("PutItem", {"TableName": TABLE, "Item": item(1, "b"), "ReturnValues": "ALL_OLD"}),
        ("GetItem", {"TableName": TABLE, "Key": {"id": {"S": "r1"}}}),
        ("GetItem", {"TableName": TABLE, "Key": {"id": {"S": "missing"}}}),
        ("UpdateItem", {"TableName": TABLE, "Key": {"id": {"S": "r1"}}, "UpdateExpression": "ADD c :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}}, "ReturnValues": "ALL_NEW"}),
        ("Query", {"TableName": TABLE, "IndexName": "by_at", "KeyConditionExpression": "kind = :k",
                   "ExpressionAttributeValues": {":k": {"S": "p"}}, "Limit": 1}),
        ("Scan", {"TableName": TABLE}),
    ]
    fast = [dynamodb(op, body) for op, body in requests]
    patched = DynamoHandler.serialized
    del DynamoHandler.serialized  # moto's own serializer
    try:
        dynamodb("DeleteItem", {"TableName": TABLE, "Key": {"id": {"S": "r1"}}})
        slow = [dynamodb(op, body) for op, body in requests]
    finally:
        DynamoHandler.serialized = patched
    assert fast == slow


def test_a_cancelled_transaction_changes_nothing_and_a_duplicate_is_refused(dynamodb):
    def transact(i: int, expect: int = 200) -> dict:
        return dynamodb("TransactWriteItems", {"TransactItems": [
            {"Put": {"TableName": TABLE, "Item": item(i, "x"), "ConditionExpression": "attribute_not_exists(id)"}},
            {"Update": {"TableName": TABLE, "Key": {"id": {"S": "#counters"}}, "UpdateExpression": "ADD c :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}}}}]}, expect)

    transact(1)
    refused = transact(1, 400)
    assert refused["__type"].endswith("TransactionCanceledException")
    assert "ConditionalCheckFailed" in json.dumps(refused)
    counters = dynamodb("GetItem", {"TableName": TABLE, "Key": {"id": {"S": "#counters"}}})["Item"]
    assert counters["c"] == {"N": "1"}
    # The first operation succeeds, the second fails its condition: the first is undone.
    dynamodb("TransactWriteItems", {"TransactItems": [
        {"Put": {"TableName": TABLE, "Item": item(2, "y")}},
        {"Update": {"TableName": TABLE, "Key": {"id": {"S": "#counters"}}, "UpdateExpression": "ADD c :one",
                    "ConditionExpression": "attribute_not_exists(id)", "ExpressionAttributeValues": {":one": {"N": "1"}}}}]},
        400)
    assert "Item" not in dynamodb("GetItem", {"TableName": TABLE, "Key": {"id": {"S": "r2"}}})
    assert storage.INDEXES.window(TABLE, "by_at", "p", None, False, 10) == ['{"id":{"S":"r1"}}']


def test_a_counter_update_expression_is_parsed_once_for_every_transaction(dynamodb, monkeypatch):
    """The label counters' UpdateExpression is the same on every record: moto parsed it in the
    request check and again in the backend for each transaction; now once in all, each update's
    working copy of the tree is unpickled rather than deep-copied, and the counts stay exact (the
    shared tree is only read)."""
    from moto.dynamodb.parsing.ast_nodes import Node
    from moto.dynamodb.parsing.expressions import ExpressionTokenizer

    parses = []
    tokenise = ExpressionTokenizer.make_list.__func__  # the first step of every parse

    def counting(cls, expression: str):
        parses.append(expression)
        return tokenise(cls, expression)

    monkeypatch.setattr(ExpressionTokenizer, "make_list", classmethod(counting))
    deep_copied_nodes = []
    reconstruct = copy._reconstruct  # what copy.deepcopy calls for each object it rebuilds

    def counting_reconstruct(x, memo, *args, **kwargs):
        if isinstance(x, Node):
            deep_copied_nodes.append(type(x).__name__)
        return reconstruct(x, memo, *args, **kwargs)

    monkeypatch.setattr(copy, "_reconstruct", counting_reconstruct)
    for i in range(5):
        dynamodb("TransactWriteItems", {"TransactItems": [
            {"Put": {"TableName": TABLE, "Item": item(100 + i, "z"), "ConditionExpression": "attribute_not_exists(id)"}},
            {"Update": {"TableName": TABLE, "Key": {"id": {"S": "#parse-counters"}},
                        "UpdateExpression": "ADD #c :one SET last_at = :t", "ExpressionAttributeNames": {"#c": "c"},
                        "ExpressionAttributeValues": {":one": {"N": "1"}, ":t": {"S": f"t{i}"}}}}]})
    counters = dynamodb("GetItem", {"TableName": TABLE, "Key": {"id": {"S": "#parse-counters"}}})["Item"]
    assert counters["c"] == {"N": "5"} and counters["last_at"] == {"S": "t4"}
    assert parses == ["ADD #c :one SET last_at = :t"]
    assert deep_copied_nodes == []  # each update's copy of the tree is unpickled, not deep-copied


def test_the_item_size_limit_still_holds(dynamodb):
    big = item(1, "a")
    big["pad"] = {"S": "x" * 410_000}
    answer = dynamodb("PutItem", {"TableName": TABLE, "Item": big}, 400)
    assert "size" in json.dumps(answer).lower()
    dynamodb("PutItem", {"TableName": TABLE, "Item": item(2, "a")})
    answer = dynamodb("UpdateItem", {"TableName": TABLE, "Key": {"id": {"S": "r2"}}, "UpdateExpression": "SET padding = :p",
                                     "ExpressionAttributeValues": {":p": {"S": "x" * 410_000}}}, 400)
    assert "size" in json.dumps(answer).lower()


def test_a_long_poll_sleeps_until_a_send_wakes_it():
    """An empty queue's long poll asks moto only every LONG_POLL_RECHECK_S, and a send answers
    it at once: an idle cloud's pollers cost no CPU, and no message waits for a recheck."""
    import threading
    import time

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    moto_app = DomainDispatcherApplication(create_backend_app)
    asked = []

    def counting(environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET") == "AmazonSQS.ReceiveMessage":
            asked.append(time.monotonic())
        return moto_app(environ, start_response)

    sqs = sqs_client(storage.JournalingApp(counting, None))

    url = sqs("CreateQueue", {"QueueName": "long-poll-test"})["QueueUrl"]
    try:
        started = time.monotonic()
        assert "Messages" not in sqs("ReceiveMessage", {"QueueUrl": url, "WaitTimeSeconds": 2})
        assert time.monotonic() - started >= 1.9  # it did wait out its time
        assert len(asked) <= 2 / storage.LONG_POLL_RECHECK_S + 2  # not a busy loop (50 ms polls: ~40)

        asked.clear()
        answer = {}
        poll = threading.Thread(target=lambda: answer.update(
            sqs("ReceiveMessage", {"QueueUrl": url, "WaitTimeSeconds": 20})))
        poll.start()
        while not asked:  # the poll has looked once and found nothing
            time.sleep(0.01)
        time.sleep(storage.LONG_POLL_RECHECK_S / 2)
        sqs("SendMessage", {"QueueUrl": url, "MessageBody": "wake up"})
        poll.join(timeout=10)
        assert not poll.is_alive()
        assert [m["Body"] for m in answer["Messages"]] == ["wake up"]
        assert len(asked) <= 3  # the first look and the one the send woke (a recheck if the machine stalled)
    finally:
        sqs("DeleteQueue", {"QueueUrl": url})


def test_a_queue_backlog_costs_a_receive_one_look_at_each_message():
    """With 400 messages waiting, a receive of 10 looks at each message's visibility about once
    (moto alone: ~30 times, rebuilding the queue's attributes for every message it hands out), so
    a backlog on the S3 path no longer slows every request that queues behind the storage lock."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from moto.sqs.models import Message

    def looks_per_message_in_one_receive(patched: bool) -> float:
        if patched:
            storage.patch_moto()
        sqs = sqs_client(storage.JournalingApp(DomainDispatcherApplication(create_backend_app), None))

        url = sqs("CreateQueue", {"QueueName": f"backlog-test-{patched}"})["QueueUrl"]
        try:
            for start in range(0, 400, 10):
                sqs("SendMessageBatch", {"QueueUrl": url, "Entries": [
                    {"Id": str(i), "MessageBody": f"m{i}"} for i in range(start, start + 10)]})
            looks = []
            visible = Message.visible

            def counting_visible(self):
                looks.append(1)
                return visible.fget(self)

            Message.visible = property(counting_visible)
            try:
                received = sqs("ReceiveMessage", {"QueueUrl": url, "MaxNumberOfMessages": 10})["Messages"]
            finally:
                Message.visible = visible
            assert len(received) == 10
            return len(looks) / 400
        finally:
            sqs("DeleteQueue", {"QueueUrl": url})
            if patched:
                storage.unpatch_moto()

    assert looks_per_message_in_one_receive(patched=False) > 10  # the defect, as moto has it
    assert looks_per_message_in_one_receive(patched=True) <= 1.1


def test_a_restart_reads_no_image_and_the_images_stay_on_disk(tmp_path, sample_dir):
    """Restored S3 objects keep their bytes in their blob files (a restart with thousands of images
    spent half its S3 time reading them into memory): GET and HEAD give the same bytes, size, ETag
    and metadata as before the restart, an object written before sizes were journaled included,
    and reading one does not keep it in memory."""
    import hashlib

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    photos = [p.read_bytes() for p in sorted(sample_dir.glob("*/*.jpg"))[:3]]
    state = storage.StateStore(tmp_path, sync=False)
    state.load()
    entries = [storage.s3_entry(state, "restart-test", f"incoming/{i}.jpg", data,
                                {"x-amz-meta-clinic": f"c{i}", "Content-Type": "image/jpeg"})
               for i, data in enumerate(photos)]
    del entries[2]["obj"]["size"]  # as an older state folder has it
    state.append(entries)
    state.close()
    restored = storage.StateStore(tmp_path, sync=False)
    restored.load()
    storage.patch_moto()
    backend = storage.s3_backend()
    try:
        backend.create_bucket("restart-test", "us-east-1")
        storage.restore_into_moto(restored)
        keys = [backend.get_object("restart-test", f"incoming/{i}.jpg") for i in range(len(photos))]
        assert [key.size for key in keys] == [len(data) for data in photos]
        client = Client(DomainDispatcherApplication(create_backend_app))
        auth = AUTH.replace("/dynamodb/", "/s3/")
        for i, data in enumerate(photos):
            head = client.head(f"/restart-test/incoming/{i}.jpg", headers={"Authorization": auth})
            assert head.headers["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
            assert int(head.headers["Content-Length"]) == len(data)
            assert head.headers["x-amz-meta-clinic"] == f"c{i}" and head.headers["Content-Type"] == "image/jpeg"
            got = client.get(f"/restart-test/incoming/{i}.jpg", headers={"Authorization": auth})
            assert got.status_code == 200 and got.data == data
        assert all(in_memory_bytes(key) == 0 for key in keys)
    finally:
        for i in range(len(photos)):
            backend.delete_object("restart-test", f"incoming/{i}.jpg")
        backend.delete_bucket("restart-test")
        storage.unpatch_moto()


def in_memory_bytes(fake_key) -> int:
    """How many of an S3 object's bytes moto holds in memory."""
    buffer = fake_key._value_buffer
    held = buffer._file if isinstance(buffer, storage.BlobBuffer) else buffer
    return 0 if held is None else held.seek(0, 2)  # an in-memory file's length


def test_a_journaled_image_leaves_memory_and_an_overwrite_serves_the_new_bytes(tmp_path, sample_dir):
    """The storage process's memory no longer grows by every image stored: once a PUT is journaled
    its bytes are read from the blob file; a second PUT of the same key serves the new bytes, and
    a DELETE removes it."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    first, second = (p.read_bytes() for p in sorted(sample_dir.glob("*/*.jpg"))[:2])
    state = storage.StateStore(tmp_path, sync=False)
    state.load_in_background()  # (here in the foreground) an empty folder: nothing to read
    storage.patch_moto()
    backend = storage.s3_backend()
    client = Client(storage.JournalingApp(DomainDispatcherApplication(create_backend_app), state))
    headers = {"Authorization": AUTH.replace("/dynamodb/", "/s3/")}
    try:
        assert client.put("/journal-test", headers=headers).status_code == 200
        for data in (first, second):
            assert client.put("/journal-test/incoming/a.jpg", data=data, headers=headers).status_code == 200
            assert in_memory_bytes(backend.get_object("journal-test", "incoming/a.jpg")) == 0
            got = client.get("/journal-test/incoming/a.jpg", headers=headers)
            assert got.status_code == 200 and got.data == data
        assert client.delete("/journal-test/incoming/a.jpg", headers=headers).status_code == 204
        assert client.get("/journal-test/incoming/a.jpg", headers=headers).status_code == 404
    finally:
        backend.delete_bucket("journal-test")
        storage.unpatch_moto()
        state.close()


UPDATES = [  # (UpdateExpression, names, values): every kind of action, function and failure moto checks
    ("SET a = :s, b = :n", {}, {":s": {"S": "x"}, ":n": {"N": "2"}}),
    ("ADD #c :one SET last_at = :t", {"#c": "c"}, {":one": {"N": "1"}, ":t": {"S": "t"}}),
    ("SET n = if_not_exists(n, :zero) + :n, l = list_append(if_not_exists(l, :empty), :l)", {},
     {":zero": {"N": "0"}, ":n": {"N": "3"}, ":empty": {"L": []}, ":l": {"L": [{"S": "a"}, {"S": "b"}]}}),
    ("SET m = :m", {}, {":m": {"M": {"k": {"N": "1"}, "inner": {"M": {"z": {"S": "q"}}}}}}),
    ("SET m.#i.z = :s, m.#k = m.#k - :n", {"#i": "inner", "#k": "k"}, {":s": {"S": "r"}, ":n": {"N": "1"}}),
    ("REMOVE a, l[0] SET s = :ss", {}, {":ss": {"SS": ["p", "q"]}}),
    ("DELETE s :d ADD t :d", {}, {":d": {"SS": ["p"]}}),
    ("SET n = :s - :n", {}, {":s": {"S": "x"}, ":n": {"N": "1"}}),  # type mismatch: 400
    ("ADD a :one, b :one ADD c :one", {}, {":one": {"N": "1"}}),  # two ADD clauses: 400
    ("SET a = :s, a = :s", {}, {":s": {"S": "x"}}),  # overlapping paths: 400
    ("SET id = :s", {}, {":s": {"S": "x"}}),  # the key: 400
    ("SET #m.deep = :s", {"#m": "nowhere"}, {":s": {"S": "x"}}),  # no such path: 400
    ("SET e = :empty", {}, {":empty": {"S": ""}}),
]


def test_update_validation_answers_as_moto_does(dynamodb):
    """Each update's tree is walked with its handlers remembered per pair of classes (and copied by
    unpickling): the same items and the same errors as moto's own walk, for every kind of action,
    function and refusal."""
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser

    def run(prefix: str) -> list:
        answers = []
        for i, (expression, names, values) in enumerate(UPDATES):
            body = {"TableName": TABLE, "Key": {"id": {"S": f"{prefix}-u"}}, "UpdateExpression": expression,
                    "ExpressionAttributeValues": values, "ReturnValues": "ALL_NEW"}
            if names:
                body["ExpressionAttributeNames"] = names
            response = dynamodb.client.post("/", data=json.dumps(body), headers={
                "X-Amz-Target": "DynamoDB_20120810.UpdateItem", "Authorization": AUTH,
                "Content-Type": "application/x-amz-json-1.0"})
            answer = json.loads(response.data)
            answer.get("Attributes", {}).pop("id", None)
            answers.append((expression, response.status_code, answer))
        return answers

    fast = run("fast")
    patched = DepthFirstTraverser.traverse_node_recursively
    original = next(saved for owner, name, saved in storage._PATCHED
                    if owner is DepthFirstTraverser and name == "traverse_node_recursively")
    if original is storage._INHERITED:
        del DepthFirstTraverser.traverse_node_recursively
    else:
        DepthFirstTraverser.traverse_node_recursively = original
    try:
        plain = run("plain")
    finally:
        DepthFirstTraverser.traverse_node_recursively = patched
    assert fast == plain
    assert [status for _, status, _ in fast].count(200) >= 7 and [s for _, s, _ in fast].count(400) >= 5
