"""The storage process: moto's server (S3, SQS, DynamoDB) whose state survives a restart.

    python -m localcloud.storage --port P --state-dir .localcloud [--fresh]

moto keeps everything in memory. A WSGI middleware around moto's app records
the *effect* of every write in an append-only journal (flushed and fsync'ed
before the response goes out): the DynamoDB item as it is after the write, the
S3 object (its bytes go to a content-addressed blob file), each SQS message
added or removed. At start the last snapshot and the journal are read back into
moto, a fresh snapshot is written and the journal starts empty; while serving,
a snapshot is written every COMPACT_EVERY journal entries.

What a hard kill (kill -9) of this process can lose: nothing that was
acknowledged. What a restart does not keep: SQS receive counts and visibility
(messages in flight are visible again at once: SQS's at-least-once delivery,
which the consumer's idempotent records absorb), older S3 object versions
(only the latest version of a key is kept), and resources other than those
the stack declares (localcloud/provision.py creates those again at each start).

Fixes to moto, in this process only (the deployed code is unchanged):
- requests run one at a time (moto's backends are not thread-safe: "dictionary
  changed size during iteration"); SQS long polls wait outside that lock;
- TransactWriteItems backs up the items it touches instead of deep-copying
  every table it names (which made each write cost O(table)), and a Query on a
  global secondary index with no key condition on the sort key reads a
  window of a sorted index instead of sorting the whole table;
- and constant costs per request: moto's server lists its package folder to
  route each request (now listed once), re-measures a whole item on every
  attribute it sets (now a running size), parses the same UpdateExpression
  on every call (now once per distinct expression, and its tree is copied for
  each update by unpickling, not deep-copying), validates that tree with ten
  walks that each looked up every node's handler through ABC isinstance checks
  (now remembered per pair of classes) and lists a handler class's
  methods to dispatch each request (now remembered);
- SQS rebuilt all of a queue's attributes (three passes over every message) to
  check each received message's retention: a backlog made every receive, and
  every request behind it, slower (now the period is read directly).
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import copy
import functools
import gc
import hashlib
import io
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs, unquote

log = logging.getLogger("localcloud.storage")

REGION = "us-east-1"
COMPACT_EVERY = 50_000  # journal entries between snapshots
STORAGE_THREADS = 16  # concurrent requests (API workers, consumer, long polls, provisioning)
SNAPSHOT = "snapshot.jsonl"
JOURNAL = "journal.jsonl"
DYNAMODB_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
LONG_POLL_RECHECK_S = 0.5  # how often a waiting long poll looks again with no write in between
SQS_WRITES = {"SendMessage", "SendMessageBatch", "DeleteMessage", "DeleteMessageBatch", "ReceiveMessage",
              "PurgeQueue"}


def _account() -> str:
    from moto.core import DEFAULT_ACCOUNT_ID

    return DEFAULT_ACCOUNT_ID


def dynamodb_backend():
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends[_account()][REGION]


def sqs_backend():
    from moto.sqs.models import sqs_backends

    return sqs_backends[_account()][REGION]


def s3_backend():
    from moto.s3.models import s3_backends

    return s3_backends[_account()]["aws"]


# ---------------------------------------------------------------- the durable mirror


class StateStore:
    """What must survive, as plain JSON: the latest item per DynamoDB key, the latest object per S3
    key (bytes in blobs/), the SQS messages not yet deleted. Snapshot + journal on disk."""

    def __init__(self, state_dir: Path, sync: bool = True) -> None:
        self.dir = Path(state_dir)
        self.blobs = self.dir / "blobs"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.sync = sync
        self.ddb: dict[tuple[str, str], dict] = {}
        self.s3: dict[tuple[str, str], dict] = {}
        self.sqs: dict[tuple[str, str], dict] = {}
        self._journal = None
        self.entries_since_snapshot = 0
        self.restored = False
        self.loaded = threading.Event()  # set once load() has read snapshot and journal
        self.open_journal()

    def load(self) -> int:
        """Read the snapshot, then the journal (a torn last line from a hard kill is skipped)."""
        count = 0
        for name in (SNAPSHOT, JOURNAL):
            if name == JOURNAL:
                self.entries_since_snapshot = 0
            path = self.dir / name
            if not path.exists():
                continue
            with path.open("rb") as f:
                for line in f:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        log.warning("skipping a torn line at the end of %s", path)
                        continue
                    self.apply(entry)
                    count += 1
                    self.entries_since_snapshot += 1
        return count

    def load_in_background(self) -> None:
        try:
            with long_lived_objects():
                self.load()
        finally:
            self.loaded.set()

    def apply(self, entry: dict) -> None:
        kind = entry["k"]
        if kind == "ddb":
            self._set(self.ddb, (entry["t"], entry["key"]), entry.get("item"))
        elif kind == "s3":
            self._set(self.s3, (entry["b"], entry["key"]), entry.get("obj"))
        elif kind == "sqs":
            self._set(self.sqs, (entry["q"], entry["id"]), entry.get("m"))

    @staticmethod
    def _set(mapping: dict, key: tuple, value: Any) -> None:
        if value is None:
            mapping.pop(key, None)
        else:
            mapping[key] = value

    def entries(self) -> Iterable[dict]:
        for (table, key), item in self.ddb.items():
            yield {"k": "ddb", "t": table, "key": key, "item": item}
        for (bucket, key), obj in self.s3.items():
            yield {"k": "s3", "b": bucket, "key": key, "obj": obj}
        for (queue, mid), message in self.sqs.items():
            yield {"k": "sqs", "q": queue, "id": mid, "m": message}

    def open_journal(self) -> None:
        self._journal = (self.dir / JOURNAL).open("ab")

    def append(self, entries: list[dict]) -> None:
        if not entries:
            return
        data = b"".join(json.dumps(e, separators=(",", ":")).encode() + b"\n" for e in entries)
        self._journal.write(data)
        self._journal.flush()  # in the OS's hands; durable() makes it durable
        for entry in entries:
            self.apply(entry)
        self.entries_since_snapshot += len(entries)
        if self.entries_since_snapshot >= COMPACT_EVERY:
            self.snapshot()

    def durable(self) -> None:
        """fdatasync what append() wrote; called outside the request lock, so concurrent writers
        share one disk flush. A compaction in between already fsync'ed it in the snapshot."""
        journal = self._journal
        if not self.sync or journal is None:
            return
        try:
            os.fdatasync(journal.fileno())
        except (OSError, ValueError):
            pass

    def snapshot(self) -> None:
        """Write the whole mirror to a new snapshot atomically, then empty the journal."""
        tmp = self.dir / (SNAPSHOT + ".tmp")
        with tmp.open("wb") as f:
            for entry in self.entries():
                f.write(json.dumps(entry, separators=(",", ":")).encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.dir / SNAPSHOT)
        _fsync_dir(self.dir)
        if self._journal:
            self._journal.close()
        (self.dir / JOURNAL).open("wb").close()
        self.open_journal()
        self.entries_since_snapshot = 0

    def put_blob(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        path = Path(self.blob_path(digest))
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            tmp = path.with_suffix(".tmp")
            with tmp.open("wb") as f:
                f.write(data)
                f.flush()
                if self.sync:
                    os.fsync(f.fileno())
            os.replace(tmp, path)
        return digest

    def blob_path(self, digest: str) -> str:
        return os.path.join(self.blobs, digest[:2], digest)  # a str: a restart builds thousands

    def remove_unreferenced_blobs(self) -> None:
        referenced = {obj["blob"] for obj in self.s3.values()}
        for path in self.blobs.glob("*/*"):
            if path.name not in referenced:
                path.unlink(missing_ok=True)

    def record_count(self, table: str) -> int:
        return sum(1 for (t, _), item in self.ddb.items() if t == table and "record_type" in item)

    def close(self) -> None:
        if self._journal:
            self._journal.close()
            self._journal = None


@contextlib.contextmanager
def long_lived_objects():
    """A restart builds about 50 small objects per record, and Python's cyclic garbage collector
    rescans everything built so far each time it runs (at 20,000 records that was most of the
    restart). Build them with collection off, then move them out of the collector's sight
    (gc.freeze): they live as long as the process anyway."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------- a sorted index for GSI queries


class SortedIndexes:
    """Per (table, GSI, partition value): the items' (sort value, table key) in order."""

    def __init__(self) -> None:
        self._lists: dict[tuple[str, str, str], list[tuple[str, str]]] = {}
        self._entries: dict[tuple[str, str], list[tuple[tuple[str, str, str], tuple[str, str]]]] = {}

    @staticmethod
    def _scalar(value: dict | None) -> str | None:
        if not value:
            return None
        for kind in ("S", "N", "B"):
            if kind in value:
                return value[kind]
        return None

    def update(self, table, table_key: str, attrs: dict | None) -> None:
        for list_key, entry in self._entries.pop((table.name, table_key), []):
            values = self._lists.get(list_key)
            if values is not None:
                i = bisect.bisect_left(values, entry)
                if i < len(values) and values[i] == entry:
                    del values[i]
        if attrs is None:
            return
        added = []
        for index in table.global_indexes:
            hash_attr, range_attr = _index_keys(index)
            if hash_attr is None or range_attr is None:
                continue
            hash_value, range_value = self._scalar(attrs.get(hash_attr)), self._scalar(attrs.get(range_attr))
            if hash_value is None or range_value is None:
                continue
            list_key = (table.name, index.name, hash_value)
            entry = (range_value, table_key)
            bisect.insort(self._lists.setdefault(list_key, []), entry)
            added.append((list_key, entry))
        if added:
            self._entries[(table.name, table_key)] = added

    def window(self, table_name: str, index_name: str, hash_value: str, start: tuple[str, str] | None,
               forward: bool, limit: int) -> list[str]:
        """Table keys of the items a page can hold: `limit` past `start` (sort value, table key),
        and a few around it; moto sorts the window and applies the page itself."""
        values = self._lists.get((table_name, index_name, hash_value), [])
        margin = limit + 2
        if forward:
            i = 0 if start is None else bisect.bisect_left(values, start)
            picked = values[max(0, i - 2): i + margin]
        else:
            i = len(values) if start is None else bisect.bisect_right(values, start)
            picked = values[max(0, i - margin): i + 2]
        return [table_key for _, table_key in picked]


def _index_keys(index) -> tuple[str | None, str | None]:
    hash_attr = next((k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH"), None)
    range_attr = next((k["AttributeName"] for k in index.schema if k["KeyType"] == "RANGE"), None)
    return hash_attr, range_attr


INDEXES = SortedIndexes()


def _key_json(table, attrs: dict) -> str:
    key = {table.hash_key_attr: attrs[table.hash_key_attr]}
    if table.range_key_attr:
        key[table.range_key_attr] = attrs[table.range_key_attr]
    return json.dumps(key, sort_keys=True, separators=(",", ":"))


def _table_item(table, key: dict):
    from moto.dynamodb.models.dynamo_type import DynamoType

    range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
    return table.get_item(DynamoType(key[table.hash_key_attr]), range_key)


_PATCHED: list[tuple[object, str, object]] = []  # (owner, attribute, original) to undo


_INHERITED = object()


def _replace(owner, name: str, value) -> None:
    _PATCHED.append((owner, name, vars(owner).get(name, _INHERITED)))
    setattr(owner, name, value)


def unpatch_moto() -> None:
    """Undo patch_moto() (tests that share the process with plain moto)."""
    from moto.dynamodb.models.table import Table

    while _PATCHED:
        owner, name, original = _PATCHED.pop()
        if original is _INHERITED:
            delattr(owner, name)
        else:
            setattr(owner, name, original)
    Table._localcloud_patched = False


def patch_moto() -> None:
    """The two O(table) costs of moto, made O(items touched); see the module docstring."""
    import moto.dynamodb.models as ddb_models
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    if getattr(Table, "_localcloud_patched", False):
        return
    Table._localcloud_patched = True

    class _NoTableCopy:  # the module's `copy`, minus deep copies of whole tables
        def __getattr__(self, name):
            return getattr(copy, name)

        @staticmethod
        def deepcopy(value, memo=None):
            return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    _replace(ddb_models, "copy", _NoTableCopy())
    original_transact = ddb_models.DynamoDBBackend.transact_write_items

    def transact_write_items(self, transact_items):
        backups = []
        for wrapped in transact_items:
            try:
                _, op = next(iter(wrapped.items()))
                table = self.tables[op["TableName"]]
                key = op.get("Key") or {a: op["Item"][a] for a in (table.hash_key_attr, table.range_key_attr) if a}
                backups.append((table, key, copy.deepcopy(_table_item(table, key))))
            except Exception:  # malformed: moto's own validation answers it
                continue
        try:
            return original_transact(self, transact_items)
        except Exception:
            for table, key, item in reversed(backups):  # undo whatever the transaction applied
                hash_key = DynamoType(key[table.hash_key_attr])
                range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
                if item is None:
                    if _table_item(table, key) is not None:
                        table.delete_item(hash_key, range_key)
                elif range_key is not None:
                    table.items[hash_key][range_key] = item
                else:
                    table.items[hash_key] = item
            raise

    _replace(ddb_models.DynamoDBBackend, "transact_write_items", transact_write_items)
    original_query = Table.query

    def query(self, hash_key, range_comparison, range_objs, limit, exclusive_start_key, scan_index_forward,
              projection_expressions, index_name=None, consistent_read=False, filter_expression=None,
              hash_key_conditions=None, range_key_conditions=None, **filter_kwargs):
        args = (self, hash_key, range_comparison, range_objs, limit, exclusive_start_key, scan_index_forward,
                projection_expressions, index_name, consistent_read, filter_expression)
        kwargs = dict(hash_key_conditions=hash_key_conditions, range_key_conditions=range_key_conditions,
                      **filter_kwargs)
        index = next((i for i in self.global_indexes if i.name == index_name), None) if index_name else None
        hash_attr, range_attr = _index_keys(index) if index is not None else (None, None)
        simple = (index is not None and range_attr is not None and limit and not range_comparison
                  and not filter_kwargs and len(hash_key_conditions or []) == 1
                  and len(range_key_conditions or []) <= 1 and not (range_key_conditions or [[0, 0]])[0][1])
        if not simple:
            return original_query(*args, **kwargs)
        hash_value = SortedIndexes._scalar(hash_key_conditions[0][1].to_json())
        start_value = SortedIndexes._scalar((exclusive_start_key or {}).get(range_attr))
        start = None
        if start_value is not None:
            try:
                start = (start_value, _key_json(self, exclusive_start_key))
            except KeyError:  # not a key of this table: moto answers it
                return original_query(*args, **kwargs)
        table_keys = INDEXES.window(self.name, index.name, hash_value, start, scan_index_forward is not False,
                                    int(limit))
        candidates = [i for i in (_table_item(self, json.loads(k)) for k in table_keys) if i is not None]
        self.all_items = lambda: list(candidates)  # shadows the method for this one call
        try:
            return original_query(*args, **kwargs)
        finally:
            del self.all_items

    _replace(Table, "query", query)
    _patch_item_size()
    _patch_dynamodb_serializer()
    _patch_backend_lookup()
    _patch_update_expression_cache()
    _patch_validator_copy()
    _patch_update_traversal()
    _patch_dispatch_lookups()
    _patch_sqs_backlog_costs()


def _patch_sqs_backlog_costs() -> None:
    """moto's SQS rebuilds all of a queue's attributes (three passes over every message in it)
    for the retention check of each message it hands out, and asks the clock through datetime
    objects for each message's visibility. With a backlog (the S3 path flooded faster than the
    consumer drains it) a receive of 10 cost 30 passes over the backlog, under the lock every
    request shares: the soak's POST /predict median climbed from 88 to 131 ms over 18,000
    predictions. Now the retention period is read directly and the clock is time.time() (what
    moto computes, without the datetime arithmetic): one pass over the queue a receive."""
    import moto.sqs.models as sqs_models

    seconds, millis = sqs_models.unix_time, sqs_models.unix_time_millis

    def is_message_valid_based_on_retention_period(self, queue_name, message) -> bool:
        retention_s = int(self.get_queue(queue_name).message_retention_period)
        return retention_s + message.sent_timestamp / 1000 > time.time()

    _replace(sqs_models.SQSBackend, "is_message_valid_based_on_retention_period",
             is_message_valid_based_on_retention_period)
    _replace(sqs_models, "unix_time", lambda dt=None: time.time() if dt is None else seconds(dt))
    _replace(sqs_models, "unix_time_millis", lambda dt=None: time.time() * 1000 if dt is None else millis(dt))


def _patch_dispatch_lookups() -> None:
    """moto finds the method for each request by listing its handler class's members
    (inspect.getmembers) and re-spelling the action name: both are pure, so remember them."""
    import moto.core.responses as moto_responses

    respell, list_methods = moto_responses.camelcase_to_underscores, moto_responses.method_names_from_class
    _replace(moto_responses, "camelcase_to_underscores", functools.lru_cache(maxsize=1024)(respell))
    _replace(moto_responses, "method_names_from_class",
             functools.lru_cache(maxsize=256)(lambda clazz: frozenset(list_methods(clazz))))


def _patch_update_expression_cache() -> None:
    """moto parses an UpdateExpression into a syntax tree on every call (the label counters' same
    expression, twice per record, and again where a transaction's request is checked): parse each
    distinct expression once. Safe to share: the request check only reads the tree, and moto's
    validator deep-copies it before it resolves names and values into it."""
    import moto.dynamodb.models as ddb_models
    import moto.dynamodb.responses as ddb_responses

    parser = ddb_models.UpdateExpressionParser

    class CachedUpdateExpressionParser:
        make = staticmethod(functools.lru_cache(maxsize=512)(parser.make))

    _replace(ddb_models, "UpdateExpressionParser", CachedUpdateExpressionParser)
    _replace(ddb_responses, "UpdateExpressionParser", CachedUpdateExpressionParser)


def _patch_validator_copy() -> None:
    """moto's update validator deep-copies the expression's tree before resolving names and values
    into it: 0.13 ms with copy.deepcopy for the counters' expression, twice per record, under the
    lock. The trees are the parse cache's and are never changed, so each is pickled once and every
    copy is unpickled from those bytes (0.03 ms): the same fresh tree."""
    import pickle

    import moto.dynamodb.parsing.validators as validators
    from moto.dynamodb.parsing.ast_nodes import Node

    pickled: dict[int, tuple[Node, bytes]] = {}  # id(tree) -> (tree, its pickle); the tree kept alive

    def clone(value, memo=None):
        if memo is not None or not isinstance(value, Node):
            return copy.deepcopy(value, memo)
        entry = pickled.get(id(value))
        if entry is None or entry[0] is not value:
            if len(pickled) >= 1024:  # as many as the parse cache holds, and then some
                pickled.clear()
            try:
                data = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
            except Exception:  # a tree pickle cannot write: deep-copied as before
                data = None
            entry = pickled[id(value)] = (value, data)
        return pickle.loads(entry[1]) if entry[1] is not None else copy.deepcopy(value)

    _replace(validators, "deepcopy", clone)


def _patch_update_traversal() -> None:
    """Each UpdateItem runs ten validators over the expression's tree; for every node each one
    rebuilt its map of node class to handler twice and checked the node against it through ABC
    isinstance calls: half of a record's transaction CPU, under the lock. The same depth-first walk,
    with the handler each (validator class, node class) pair gets remembered. moto registers no
    virtual subclasses and every map is {class: own method}, so the choice depends on the two
    classes alone (a map of any other shape falls back to moto's walk)."""
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser, Node

    original = DepthFirstTraverser.traverse_node_recursively
    is_node: dict[type, bool] = {}
    handlers: dict[tuple[type, type], Any] = {}  # -> the handler function, or None: not processed
    UNCACHEABLE = object()

    def handler_for(traverser, node_type: type):
        key = (type(traverser), node_type)
        found = handlers.get(key, UNCACHEABLE)
        if found is UNCACHEABLE:
            found = None
            for node_class, method in traverser._processing_map().items():
                if issubclass(node_type, node_class):
                    found = getattr(method, "__func__", None)
                    if getattr(method, "__self__", None) is not traverser or found is None:
                        return UNCACHEABLE
                    break
            handlers[key] = found
        return found

    def traverse_node_recursively(self, node, child_id=-1):
        node_type = type(node)
        known = is_node.get(node_type)
        if known is None:
            known = is_node[node_type] = issubclass(node_type, Node)
        if not known:
            return node
        handler = handler_for(self, node_type)
        if handler is UNCACHEABLE:
            return original(self, node, child_id)
        parent_node = node.parent
        if node.children is not None:
            for i, child_node in enumerate(node.children):
                self.pre_processing_of_child(node, i)
                traverse_node_recursively(self, child_node, i)
        if handler is not None:
            node = handler(self, node)
            node.parent = parent_node
            if parent_node:
                parent_node.children[child_id] = node
        return node

    _replace(DepthFirstTraverser, "traverse_node_recursively", traverse_node_recursively)


def _patch_backend_lookup() -> None:
    """moto's server lists its package folder (a stat per service) on every request to find the
    service a host names: list it once. The folder does not change while the process runs."""
    import moto.backends as moto_backends

    modules = tuple(moto_backends.list_of_moto_modules())
    _replace(moto_backends, "list_of_moto_modules", lambda: modules)


def _patch_item_size() -> None:
    """moto re-measures the whole item on every attribute set (O(attributes^2) per write):
    keep a running size instead. The 400 KB limit is still enforced on every set."""
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models import dynamo_type
    from moto.dynamodb.models.utilities import bytesize

    DynamoType = dynamo_type.DynamoType

    def value_size(value) -> int:
        return value.size() if type(value) is DynamoType else bytesize(str(value))

    def __setitem__(self, key, value):
        size = self.__dict__.get("_size")
        if size is None:
            size = sum(bytesize(k) + value_size(v) for k, v in dict.items(self))
        if dict.__contains__(self, key):
            size -= bytesize(key) + value_size(dict.__getitem__(self, key))
        size += bytesize(key) + value_size(value)
        if size > 405000:
            raise ItemSizeTooLarge
        dict.__setitem__(self, key, value)
        self._size = size

    def __delitem__(self, key):
        self.__dict__.pop("_size", None)
        dict.__delitem__(self, key)

    def pop(self, *args):
        self.__dict__.pop("_size", None)
        return dict.pop(self, *args)

    _replace(dynamo_type.LimitedSizeDict, "__setitem__", __setitem__)
    _replace(dynamo_type.LimitedSizeDict, "__delitem__", __delitem__)
    _replace(dynamo_type.LimitedSizeDict, "pop", pop)


FAST_SERIALIZED = {"GetItem", "Query", "Scan", "PutItem", "UpdateItem", "DeleteItem", "BatchGetItem",
                   "BatchWriteItem", "TransactWriteItems", "TransactGetItems"}


def _patch_dynamodb_serializer() -> None:
    """moto's model-driven serializer costs ~10 ms an item; the JSON protocol's answer for the
    data operations is the result itself (bytes base64, None left out): write it directly.
    tests/localcloud/test_storage.py checks both give the same JSON."""
    import base64

    from moto.dynamodb.responses import DynamoHandler, DynamoResult

    original = DynamoHandler.serialized

    def plain(value):
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items() if v is not None}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, (bytes, bytearray)):
            return base64.b64encode(value).decode("ascii")
        return value

    def serialized(self, action_result):
        if type(action_result) is DynamoResult and isinstance(action_result.result, dict) \
                and self._get_action() in FAST_SERIALIZED:
            try:
                body = json.dumps(plain(action_result.result), separators=(",", ":"))
            except (TypeError, ValueError):
                return original(self, action_result)
            headers = {"Content-Type": "application/x-amz-json-1.0"}
            headers.update(self.response_headers)
            return 200, headers, body
        return original(self, action_result)

    _replace(DynamoHandler, "serialized", serialized)


# ---------------------------------------------------------------- effects of a request, and restoring them


def sqs_message_ids() -> dict[str, set[str]]:
    return {name: {m.id for m in queue._messages} for name, queue in sqs_backend().queues.items()}


def sqs_effects(before: dict[str, set[str]]) -> list[dict]:
    entries = []
    backend = sqs_backend()
    for name, queue in backend.queues.items():
        old = before.get(name, set())
        now = {m.id: m for m in queue._messages}
        for mid in now.keys() - old:
            m = now[mid]
            entries.append({"k": "sqs", "q": name, "id": mid, "m": {
                "body": m.body, "attrs": m.message_attributes, "sent": m.sent_timestamp,
                "group": m.group_id, "dedup": m.deduplication_id, "system": m.system_attributes}})
        for mid in old - now.keys():
            entries.append({"k": "sqs", "q": name, "id": mid, "m": None})
    return entries


def dynamodb_keys(operation: str, body: dict) -> list[tuple[str, dict]]:
    backend = dynamodb_backend()

    def key_of(table_name: str, op: dict) -> tuple[str, dict]:
        if "Key" in op:
            return table_name, op["Key"]
        table = backend.get_table(table_name)
        item = op["Item"]
        return table_name, {a: item[a] for a in (table.hash_key_attr, table.range_key_attr) if a}

    if operation in ("PutItem", "UpdateItem", "DeleteItem"):
        return [key_of(body["TableName"], body)]
    if operation == "BatchWriteItem":
        keys = []
        for table_name, requests in body.get("RequestItems", {}).items():
            for request in requests:
                op = request.get("PutRequest") or request.get("DeleteRequest") or {}
                keys.append(key_of(table_name, op))
        return keys
    if operation == "TransactWriteItems":
        keys = []
        for wrapped in body.get("TransactItems", []):
            kind, op = next(iter(wrapped.items()))
            if kind != "ConditionCheck":
                keys.append(key_of(op["TableName"], op))
        return keys
    return []


def dynamodb_effects(keys: list[tuple[str, dict]]) -> list[dict]:
    backend = dynamodb_backend()
    entries = []
    for table_name, key in keys:
        table = backend.get_table(table_name)
        item = _table_item(table, key)
        attrs = item.to_json()["Attributes"] if item is not None else None
        key_json = _key_json(table, key)
        INDEXES.update(table, key_json, attrs)
        entries.append({"k": "ddb", "t": table_name, "key": key_json, "item": attrs})
    return entries


def s3_effects(state: StateStore, targets: list[tuple[str, str]]) -> list[dict]:
    backend = s3_backend()
    entries = []
    for bucket, key in targets:
        try:
            obj = backend.get_object(bucket, key)
        except Exception:
            obj = None
        if obj is None:
            entries.append({"k": "s3", "b": bucket, "key": key, "obj": None})
            continue
        entry = s3_entry(state, bucket, key, obj.value, dict(obj.metadata), obj.etag)
        leave_bytes_in_blob(obj, state.blob_path(entry["obj"]["blob"]), entry["obj"]["size"])
        entries.append(entry)
    return entries


def s3_entry(state: StateStore, bucket: str, key: str, value: bytes, metadata: dict,
             etag: str | None = None) -> dict:
    """The journal entry of one S3 object, its bytes written to a blob file (ETag: moto's, or the
    MD5 a single-part upload gets)."""
    return {"k": "s3", "b": bucket, "key": key, "obj": {
        "blob": state.put_blob(value), "size": len(value), "metadata": metadata,
        "etag": etag or f'"{hashlib.md5(value).hexdigest()}"'}}


class BlobBuffer:
    """An S3 object's bytes left in their blob file, read from it at each use.

    moto keeps every object's bytes in memory, a SpooledTemporaryFile each: a local cloud holding
    thousands of images grew by their size, and a restart read every one back in. Once an object
    is journaled its blob file holds the same bytes, so moto's file is swapped for this stand-in
    (reads open the blob; the page cache keeps the recent ones). If moto writes a new value
    (seek, truncate, write) or uses the file in any other way, it becomes an in-memory file."""

    def __init__(self, path: str, max_size: int) -> None:
        self._path, self._max_size, self._position, self._file = path, max_size, 0, None

    def seek(self, offset: int, whence: int = 0) -> int:
        if self._file is not None or whence != 0:
            return self._in_memory().seek(offset, whence)
        self._position = offset
        return offset

    def read(self, size: int = -1) -> bytes:
        if self._file is not None:
            return self._file.read(size)
        with open(self._path, "rb") as blob:
            blob.seek(self._position)
            data = blob.read(size)
        self._position += len(data)
        return data

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def _in_memory(self):
        if self._file is None:
            self._file = tempfile.SpooledTemporaryFile(self._max_size)
            with open(self._path, "rb") as blob:
                self._file.write(blob.read())
            self._file.seek(self._position)
        return self._file

    def __getattr__(self, name: str):  # truncate, write, anything else: moto's own file from here on
        if name.startswith("_"):  # not set yet (a copy being built): no file to hand it to
            raise AttributeError(name)
        return getattr(self._in_memory(), name)


def leave_bytes_in_blob(fake_key, path: str, size: int) -> None:
    """Swap a moto object's in-memory bytes for its blob file (the same bytes, journaled)."""
    fake_key._value_buffer.close()
    fake_key._value_buffer = BlobBuffer(path, fake_key._max_buffer_size)
    fake_key.contentsize = size


def restore_into_moto(state: StateStore) -> None:
    """Put the mirror's items, objects and messages back into moto's backends (no notifications)."""
    from moto.sqs.models import Message

    from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict

    def dynamo_value(value: dict) -> DynamoType:
        """DynamoType(value) without its per-value type checks (a restart builds ~25 per record):
        the same two attributes, nested lists and maps converted alike."""
        ((kind, inner),) = value.items()
        if kind == "L":
            inner = [dynamo_value(v) for v in inner]
        elif kind == "M":
            inner = {k: dynamo_value(v) for k, v in inner.items()}
        built = object.__new__(DynamoType)
        built.type, built.value = kind, inner
        return built

    ddb = dynamodb_backend()
    for (table_name, key_json), attrs in state.ddb.items():
        table = ddb.tables.get(table_name)
        if table is None:
            continue
        # Each item was validated when it was written: build it without moto's checks.
        item = Item.__new__(Item)
        item.attrs = LimitedSizeDict()
        dict.update(item.attrs, {k: dynamo_value(v) for k, v in attrs.items()})
        item.hash_key = item.attrs[table.hash_key_attr]
        item.range_key = item.attrs[table.range_key_attr] if table.range_key_attr else None
        if item.range_key is not None:
            table.items[item.hash_key][item.range_key] = item
        else:
            table.items[item.hash_key] = item
        INDEXES.update(table, key_json, attrs)
    s3 = s3_backend()
    for (bucket, key), obj in state.s3.items():
        if bucket not in s3.buckets:
            continue
        path = state.blob_path(obj["blob"])
        etag = obj.get("etag")
        fake = s3.put_object(bucket, key, b"", etag=etag.strip('"') if etag else None, disable_notification=True)
        leave_bytes_in_blob(fake, path, obj["size"] if "size" in obj else os.path.getsize(path))
        fake.set_metadata(dict(obj.get("metadata") or {}))
    sqs = sqs_backend()
    for (queue_name, mid), m in state.sqs.items():
        queue = sqs.queues.get(queue_name)
        if queue is None:
            continue
        message = Message(mid, m["body"], m.get("system") or {})
        message.message_attributes = m.get("attrs") or {}
        message.sent_timestamp = m.get("sent") or int(time.time() * 1000)
        message.group_id = m.get("group")
        message.deduplication_id = m.get("dedup")
        queue._messages.append(message)


# ---------------------------------------------------------------- the middleware


class JournalingApp:
    """moto's WSGI app, one request at a time, each write journaled before it is answered."""

    def __init__(self, app: Callable, state: StateStore | None) -> None:
        self.app = app
        self.state = state
        self.lock = threading.Lock()
        # Long polls sleep on this until a write may have added a message (a send, an S3 put's
        # notification, a visibility change) instead of re-asking every few ms: an idle cloud's
        # pollers cost next to no CPU, and a new message is seen at once.
        self.writes = threading.Condition(threading.Lock())
        self.write_count = 0

    def __call__(self, environ: dict, start_response: Callable):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        service, _, operation = target.partition(".")
        if target.startswith("AmazonSQS.") and operation == "ReceiveMessage":
            return self._receive(environ, start_response, body)
        return self._locked(environ, start_response, body, service, operation)

    def _call(self, environ: dict, body: bytes) -> tuple[str, list, bytes]:
        env = dict(environ)
        env["wsgi.input"] = io.BytesIO(body)
        env["CONTENT_LENGTH"] = str(len(body))
        captured = {}

        def start(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        result = self.app(env, start)
        try:
            data = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        return captured["status"], captured["headers"], data

    def _locked(self, environ, start_response, body, service, operation):
        method = environ["REQUEST_METHOD"]
        if self.state is not None and not self.state.loaded.is_set() and _is_data_write(
                environ, service, operation):
            self.state.loaded.wait()  # no journal entry before the saved state is read
        with self.lock:
            before = None
            s3_targets: list[tuple[str, str]] = []
            ddb_keys: list[tuple[str, dict]] = []
            journal = self.state is not None
            if service.startswith("DynamoDB") and operation in DYNAMODB_WRITES:  # the sorted index, always
                try:
                    ddb_keys = dynamodb_keys(operation, json.loads(body))
                except Exception:  # malformed: moto answers it and nothing changes
                    ddb_keys = []
            elif journal and service == "AmazonSQS" and operation in SQS_WRITES:
                before = sqs_message_ids()
            elif journal and not service and method in ("PUT", "POST", "DELETE"):
                s3_targets = s3_write_targets(environ, body)
                if s3_targets:
                    before = sqs_message_ids()  # S3 notifications add messages
            status, headers, data = self._call(environ, body)
            ok = int(status.split()[0]) < 300
            entries = dynamodb_effects(ddb_keys) if ddb_keys and ok else []
            if journal and ok:
                if s3_targets:
                    entries += s3_effects(self.state, s3_targets)
                if before is not None:
                    entries += sqs_effects(before)
                self.state.append(entries)
        if entries and self.state is not None:
            self.state.durable()  # before the answer goes out: what is acknowledged survives a kill
        if _may_add_messages(environ, service, operation):
            with self.writes:
                self.write_count += 1
                self.writes.notify_all()
        start_response(status, headers)
        return [data]

    def _receive(self, environ, start_response, body):
        """A long poll waits outside the lock: short receives until a message comes or time is up."""
        try:
            request = json.loads(body or b"{}")
            wait = float(request.get("WaitTimeSeconds") or 0)
        except ValueError:
            request, wait = None, 0
        if not request or wait <= 0:
            return self._locked(environ, start_response, body, "AmazonSQS", "ReceiveMessage")
        short = json.dumps({**request, "WaitTimeSeconds": 0}).encode()
        deadline = time.monotonic() + min(wait, 20)
        while True:
            captured = {}

            def keep(status, headers, exc_info=None):
                captured["status"], captured["headers"] = status, headers

            with self.writes:
                seen = self.write_count
            data = b"".join(self._locked(environ, keep, short, "AmazonSQS", "ReceiveMessage"))
            left = deadline - time.monotonic()
            if '"Messages"' in data.decode("utf-8", "replace") or left <= 0 \
                    or not captured["status"].startswith("200"):
                start_response(captured["status"], captured["headers"])
                return [data]
            with self.writes:  # a write, or at most LONG_POLL_RECHECK_S (visibility timeouts end unseen)
                self.writes.wait_for(lambda: self.write_count != seen, min(left, LONG_POLL_RECHECK_S))


def _may_add_messages(environ: dict, service: str, operation: str) -> bool:
    """A send or visibility change, or an S3 write (its notification): what a long poll waits for."""
    if service == "AmazonSQS":
        return operation.startswith(("SendMessage", "ChangeMessageVisibility"))
    return not service and environ["REQUEST_METHOD"] in ("PUT", "POST")


def _is_data_write(environ: dict, service: str, operation: str) -> bool:
    if service.startswith("DynamoDB"):
        return operation in DYNAMODB_WRITES
    if service == "AmazonSQS":
        return operation in SQS_WRITES
    method = environ["REQUEST_METHOD"]
    has_key = "/" in unquote(environ.get("PATH_INFO", "")).lstrip("/")
    return not service and (method == "POST" or (method in ("PUT", "DELETE") and has_key))


def s3_write_targets(environ: dict, body: bytes) -> list[tuple[str, str]]:
    """(bucket, key) pairs a path-style S3 write may change."""
    path = unquote(environ.get("PATH_INFO", ""))
    bucket, _, key = path.lstrip("/").partition("/")
    if not bucket or bucket.startswith("moto-api"):
        return []
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    if key:
        return [(bucket, key)]
    if environ["REQUEST_METHOD"] == "POST" and "delete" in query:
        import re

        return [(bucket, unquote_xml(k)) for k in re.findall(rb"<Key>(.*?)</Key>", body, re.S)]
    if environ["REQUEST_METHOD"] == "POST" and environ.get("CONTENT_TYPE", "").startswith("multipart/form-data"):
        from werkzeug.formparser import parse_form_data

        env = dict(environ)
        env["wsgi.input"] = io.BytesIO(body)
        _, form, files = parse_form_data(env)
        key = form.get("key")
        upload = files.get("file")
        if key:
            if "${filename}" in key and upload is not None:
                key = key.replace("${filename}", upload.filename or "")
            return [(bucket, key)]
    return []


def unquote_xml(raw: bytes) -> str:
    from xml.sax.saxutils import unescape

    return unescape(raw.decode(), {"&quot;": '"', "&apos;": "'"})


# ---------------------------------------------------------------- the process


def _patch_waitress() -> None:
    """Two ways waitress 3.0.2 differs from what AWS clients expect, undone:
    - it answers `Expect: 100-continue` on a request whose body is empty (boto3's PutObject of
      b"") with 100 Continue, then waits for a body that never comes: a complete request needs
      no 100 Continue, so none is sent and the request is served;
    - it capitalises response header names (x-amz-meta-condition -> X-Amz-Meta-Condition), and
      boto3 keeps the case of user metadata as S3 sends it (lower case): the app's spelling is
      put back."""
    from waitress.channel import HTTPChannel
    from waitress.task import WSGITask

    if getattr(HTTPChannel, "_localcloud_patched", False):
        return
    send_continue, build_header = HTTPChannel.send_continue, WSGITask.build_response_header

    def send_continue_unless_complete(self):
        if self.request is not None and self.request.completed:
            self.request.expect_continue = False
            return
        send_continue(self)

    def header_as_the_app_spelt_it(self):
        names = [name for name, _ in self.response_headers]
        head = build_header(self)
        for name in names:
            capitalised = "-".join(part.capitalize() for part in name.split("-"))
            if capitalised != name:
                head = head.replace(f"\r\n{capitalised}: ".encode("latin-1"), f"\r\n{name}: ".encode("latin-1"))
        return head

    HTTPChannel.send_continue = send_continue_unless_complete
    WSGITask.build_response_header = header_as_the_app_spelt_it
    HTTPChannel._localcloud_patched = True


class _Stop(Exception):
    """Raised in the main thread by SIGTERM/SIGINT: leave waitress's loop, then snapshot."""


def serve(port: int, state_dir: Path | None, fresh: bool, sync: bool = True) -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from waitress.server import create_server

    patch_moto()
    state = None
    if state_dir is not None:
        state_dir.mkdir(parents=True, exist_ok=True)
        if fresh:
            for name in (SNAPSHOT, JOURNAL):
                (state_dir / name).unlink(missing_ok=True)
        state = StateStore(state_dir, sync=sync)
        # Read the state while the server already answers the supervisor's provisioning.
        threading.Thread(target=state.load_in_background, name="load-state", daemon=True).start()
    app = JournalingApp(DomainDispatcherApplication(create_backend_app), state)
    # The supervisor provisions through HTTP, then asks us to restore (POST /_localcloud/restore).
    control = ControlApp(app, state)
    # waitress, not moto's werkzeug server: HTTP/1.1 keep-alive (werkzeug closes every connection,
    # so each AWS call paid a new connection and a new thread), and a fixed pool of threads.
    logging.getLogger("waitress").setLevel(logging.ERROR)
    _patch_waitress()
    server = create_server(control, host="127.0.0.1", port=port, threads=STORAGE_THREADS,
                           connection_limit=1000, channel_timeout=120, ident="localcloud-storage",
                           max_request_body_size=6 * 1024 ** 3)

    def on_signal(*_):
        raise _Stop

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        server.run()
    except _Stop:
        pass
    finally:
        server.close()
    with app.lock:
        if state is not None:
            state.snapshot()
            state.close()


class ControlApp:
    """Two local routes beside moto's: restore the state after provisioning, and a record count."""

    def __init__(self, app: JournalingApp, state: StateStore | None) -> None:
        self.app = app
        self.state = state

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/_localcloud/restore" and environ["REQUEST_METHOD"] == "POST":
            table = parse_qs(environ.get("QUERY_STRING", "")).get("table", [""])[0]
            if self.state is not None:
                self.state.loaded.wait()
            with self.app.lock:
                started = time.perf_counter()
                if self.state is not None and not self.state.restored:
                    with long_lived_objects():
                        restore_into_moto(self.state)
                    self.state.restored = True
                    if self.state.entries_since_snapshot >= COMPACT_EVERY // 10:
                        self.state.snapshot()  # else the journal goes on; compaction comes later
                        self.state.remove_unreferenced_blobs()
                body = {"records": self.state.record_count(table) if self.state else 0,
                        "objects": len(self.state.s3) if self.state else 0,
                        "messages": len(self.state.sqs) if self.state else 0,
                        "seconds": round(time.perf_counter() - started, 3)}
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps(body).encode()]
        return self.app(environ, start_response)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state-dir", type=Path, default=None, help="omit: in memory only")
    parser.add_argument("--fresh", action="store_true", help="forget the saved state")
    parser.add_argument("--no-fsync", action="store_true", help="faster, but a machine crash may lose writes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(args.port, args.state_dir, args.fresh, sync=not args.no_fsync)
    return 0


if __name__ == "__main__":
    sys.exit(main())
