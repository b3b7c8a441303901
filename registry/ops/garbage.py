"""Garbage collection of the artifact store: ``ModelRegistry.collect_garbage``.

What it removes, when older than the cutoff:

- blobs no version references: left by a process killed between storing a blob and
  committing its version, or by a cleanup that failed (an unreachable bucket);
- writes abandoned mid-way: temp files of the local store, spool files of the
  object store's cache, unfinished S3 multipart uploads.

Younger ones are kept: they may belong to a registration still in flight (its blob
is stored before its transaction). Candidates are listed without a lock, then each
batch is deleted inside a write transaction that re-checks the references, so a
registration deduplicating onto a blob either commits first (the blob is kept) or
finds it gone and stores it again (``registration``'s ``_BlobVanished`` retry).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from registry import queries
from registry.artifacts import BlobStore
from registry.store import Store, Tx

BATCH = 200


@dataclass(frozen=True, slots=True)
class GarbageReport:
    location: str
    removed: tuple[str, ...]  # digests of the blobs removed (or, dry run, to remove)
    kept_recent: int  # unreferenced, but younger than the cutoff
    abandoned: tuple[str, ...]  # temp files and unfinished uploads removed
    dry_run: bool

    def to_dict(self) -> dict[str, object]:
        return {
            "location": self.location,
            "removed": list(self.removed),
            "kept_recent": self.kept_recent,
            "abandoned": list(self.abandoned),
            "dry_run": self.dry_run,
        }


def collect_garbage(
    store: Store,
    artifacts: BlobStore,
    *,
    older_than: timedelta,
    dry_run: bool,
    now: datetime,
    actor: str,
) -> GarbageReport:
    cutoff = now - older_than
    listed = list(artifacts.blobs())
    referenced: set[str] = set()
    with store.read() as conn:
        for i in range(0, len(listed), BATCH):
            referenced |= queries.referenced_digests(conn, [d for d, _ in listed[i : i + BATCH]])
    unreferenced = [(d, at) for d, at in listed if d not in referenced]
    old = [d for d, at in unreferenced if at < cutoff]
    kept = len(unreferenced) - len(old)
    if dry_run:
        return GarbageReport(artifacts.location, tuple(old), kept, (), dry_run=True)

    removed: list[str] = []
    for i in range(0, len(old), BATCH):
        batch = old[i : i + BATCH]

        def op(tx: Tx, batch: list[str] = batch) -> None:
            used = queries.referenced_digests(tx.conn, batch)
            gone = [d for d in batch if d not in used]
            for digest in gone:
                artifacts.delete(digest)
            if gone:
                tx.audit(
                    actor=actor,
                    action="collect_garbage",
                    target=artifacts.location,
                    after={"removed": gone},
                )
            removed.extend(gone)

        store.write(op)
    abandoned = artifacts.sweep_incomplete(cutoff)
    return GarbageReport(artifacts.location, tuple(removed), kept, tuple(abandoned), dry_run=False)
