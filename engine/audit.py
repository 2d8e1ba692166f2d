"""A tamper-evident audit log of evaluations (JSON lines, hash-chained).

Each line is one evaluation: when it was made (wall-clock time, metadata
only: the evaluation's own date is the explicit ``as_of``), who asked (a
service token's name, or the user running the command line), the protocol
(name, version, sha256), the as-of date, the parameters, the fingerprint of
the input record (its sha256, so no clinical data or identifiers are copied
into the log), and the outcomes.

Every entry carries ``seq`` (1, 2, 3...), ``prev`` (the previous entry's
hash) and ``hash``: the sha256 of its own canonical JSON (orjson, sorted keys,
without ``hash``). :func:`verify` recomputes them and names the line of any
entry edited, removed, inserted or moved. Removing entries from the *end*
leaves a shorter chain that is still whole; to catch that, keep the head
(the last hash, printed by ``pathways audit verify``) somewhere else and pass
it back with ``expect_head``.

Several processes may append to one log: each append holds an exclusive
``flock`` on the file while it reads the chain's head and writes.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import getpass
import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import orjson

GENESIS = "sha256:" + "0" * 64
_SORT = orjson.OPT_SORT_KEYS


def entry_hash(entry: dict) -> str:
    """The sha256 of an entry's canonical JSON, leaving out its own ``hash``."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    return "sha256:" + hashlib.sha256(orjson.dumps(body, option=_SORT)).hexdigest()


def evaluation_entry(result, who: str, via: str) -> dict:
    """The audit entry for one :class:`engine.Result` (without the chain fields)."""
    env = result.envelope
    return {
        "who": who,
        "via": via,
        "protocol": {"name": env["protocol"], "version": env["version"], "sha256": env["sha256"]},
        "engine_version": env["engine_version"],
        "as_of": env["as_of"],
        "parameters": env["parameters"],
        "input": env["record_fingerprint"],
        "outcomes": result.values(),
    }


def current_user() -> str:
    """Who runs the command line, for ``who``."""
    try:
        return "user:" + getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (e.g. a container)
        return f"uid:{os.getuid()}"


class AuditLog:
    """Appends hash-chained entries to a JSON-lines file. Thread-safe."""

    def __init__(self, path: str | Path, fsync: bool = False):
        self.path = Path(path)
        self.fsync = fsync
        self._lock = threading.Lock()
        self._known: tuple[int, int, str] | None = None  # (file size, last seq, last hash) after our write
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch(exist_ok=True)

    def append(self, entries: list[dict], when: str | None = None) -> list[dict]:
        """Chain and write ``entries`` (dicts without seq/prev/hash/when); returns them as written."""
        if not entries:
            return []
        when = when or dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")
        with self._lock, open(self.path, "ab") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                size = os.fstat(f.fileno()).st_size
                if self._known is not None and self._known[0] == size:
                    seq, prev = self._known[1], self._known[2]
                else:  # another process wrote since (or this is our first write): read the head
                    seq, prev = _head(self.path)
                out, lines = [], []
                for entry in entries:
                    seq += 1
                    full = {**entry, "when": when, "seq": seq, "prev": prev}
                    full["hash"] = prev = entry_hash(full)
                    out.append(full)
                    lines.append(orjson.dumps(full, option=_SORT))
                data = b"\n".join(lines) + b"\n"
                f.write(data)
                f.flush()
                if self.fsync:
                    os.fsync(f.fileno())
                self._known = (size + len(data), seq, prev)
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
        return out


def _head(path: Path) -> tuple[int, str]:
    """(seq, hash) of the last entry of a log, or (0, GENESIS) for an empty one."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        end = f.tell()
        chunk, pos = b"", end
        while pos > 0:
            step = min(65536, pos)
            pos -= step
            f.seek(pos)
            chunk = f.read(step) + chunk
            if chunk.rstrip(b"\n").count(b"\n") >= 1:
                break
    lines = [ln for ln in chunk.split(b"\n") if ln.strip()]
    if not lines:
        return 0, GENESIS
    try:
        last = orjson.loads(lines[-1])
        return int(last["seq"]), str(last["hash"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        # A damaged tail: new entries still chain from it, and verify reports the damage.
        return 0, "sha256:" + hashlib.sha256(lines[-1]).hexdigest()


@dataclass
class Verified:
    """The outcome of :func:`verify`: entries read, problems (each naming a line), the head."""

    entries: int
    problems: list[str]
    head: str

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(path: str | Path, expect_head: str | None = None) -> Verified:
    """Check every entry's own hash, its sequence number and its link to the entry before.

    A problem names the line (1-based) and says what it means: an edit, a
    removal, an insertion or a move. After a problem the check carries on
    from that line, so one edit is reported once, not at every later line.
    """
    problems: list[str] = []
    expected_seq, prev, entries = 1, GENESIS, 0
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            line = raw.rstrip(b"\n")
            if not line.strip():
                problems.append(f"line {number}: an empty line (the log has been edited)")
                continue
            try:
                entry = orjson.loads(line)
                seq, claimed, link = entry["seq"], entry["hash"], entry["prev"]
                if not (isinstance(seq, int) and isinstance(claimed, str) and isinstance(link, str)):
                    raise TypeError
            except (orjson.JSONDecodeError, KeyError, TypeError):
                problems.append(f"line {number}: not an audit entry (not JSON, or no seq, prev and hash)")
                prev = "sha256:" + hashlib.sha256(line).hexdigest()
                expected_seq += 1
                continue
            entries += 1
            if entry_hash(entry) != claimed:
                problems.append(f"line {number}: entry {seq} was changed after it was written "
                                "(its content does not match its hash)")
            if seq > expected_seq:
                missing = f"entry {expected_seq}" if seq == expected_seq + 1 else \
                    f"entries {expected_seq} to {seq - 1}"
                problems.append(f"line {number}: {missing} missing before this line (removed)")
            elif seq < expected_seq:
                problems.append(f"line {number}: entry {seq} is out of place: entry {expected_seq} "
                                "was expected here (inserted, copied or moved)")
            elif link != prev:
                problems.append(f"line {number}: entry {seq} does not follow the entry before it "
                                "(the line above was changed, or replaced)")
            expected_seq, prev = seq + 1, claimed
    if expect_head is not None and prev != expect_head:
        problems.append(f"the last entry's hash is {prev}, not the expected {expect_head} "
                        "(entries were removed from the end, or added)")
    return Verified(entries, problems, prev)
