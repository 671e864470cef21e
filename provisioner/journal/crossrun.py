"""What one run of a journal needs to know about the others of the same product.

Three questions, asked before a device is reported lost or doubled:

* :meth:`SqliteCrossRun.claims`: which unfinished runs may already have created some
  of these DeviceNames (a run killed after its creation call, whose credentials never
  reached an output file)? A new run must not report them as "already exists" and
  move on: that would strand them.
* :meth:`SqliteCrossRun.creators`: which earlier run created a name the server now
  says exists, and where did its credentials go? The reason a person reads names it.
* :meth:`SqliteCrossRun.output_owners`: which finished run wrote the file a new run is
  about to replace? Its credentials must not vanish with it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from pathlib import Path

from provisioner.journal.models import RunRecord
from provisioner.journal.protocol import Claim, Scope
from provisioner.journal.sqlite import RUN_SELECT, SqliteDb, run_record
from provisioner.paths import same_file

__all__ = ["SqliteCrossRun", "same_target"]

# Application states from which a creation call may have reached the server: the
# intent is written before the call, so anything earlier created nothing.
_CREATE_SENT = ("INTENT_CREATE", "CREATE", "CREATE_SUCCESS", "CREATE_FAILED", "DONE")
_SLICE = 500  # names per query, well under SQLite's limit of bound values

# The filters of _named: constants, never built from a value.
_MAY_HAVE_CREATED = (
    "d.state IN ('created', 'importing') OR "
    "(d.state = 'pending' AND a.state IN (" + ", ".join(f"'{s}'" for s in _CREATE_SENT) + "))"
)
_CREATED = "d.state = 'created'"

_OTHER_RUNS = RUN_SELECT + "WHERE product_key = ? AND run_key != ? ORDER BY created_at"
_OTHER_UNFINISHED = (
    RUN_SELECT + "WHERE product_key = ? AND run_key != ? AND status != 'completed' "
    "ORDER BY created_at"
)
_OTHER_COMPLETED = RUN_SELECT + "WHERE run_key != ? AND status = 'completed' ORDER BY created_at"


def same_target(run: RunRecord, endpoint: str, iot_instance_id: str | None) -> bool:
    """Whether ``run`` worked on the same endpoint and IoT instance (so the same devices)."""
    params = run.params
    return params.get("endpoint") == endpoint and (params.get("iot_instance_id") or None) == (
        iot_instance_id or None
    )


class SqliteCrossRun:
    """The cross-run queries of :class:`~provisioner.journal.store.SqliteJournal`."""

    _db: SqliteDb

    def _other_runs(
        self, scope: Scope, exclude_run_key: str, *, unfinished: bool
    ) -> list[RunRecord]:
        sql = _OTHER_UNFINISHED if unfinished else _OTHER_RUNS
        rows = self._db.query(sql, (scope.product_key, exclude_run_key))
        runs = [run_record(r) for r in rows]
        return [r for r in runs if same_target(r, scope.endpoint, scope.iot_instance_id)]

    def _named(self, run_id: str, names: Collection[str], where: str) -> Iterator[str]:
        """Those of ``names`` that run ``run_id`` holds in a state ``where`` selects."""
        wanted = list(names)
        for start in range(0, len(wanted), _SLICE):
            part = wanted[start : start + _SLICE]
            marks = ",".join("?" * len(part))
            # Only placeholders and this module's constant filters go into the text.
            sql = (
                "SELECT d.device_name FROM devices d "  # noqa: S608
                "LEFT JOIN applications a ON a.app_id = d.app_id "
                f"WHERE d.run_id = ? AND d.device_name IN ({marks}) AND ({where})"
            )
            yield from (str(r[0]) for r in self._db.query(sql, (run_id, *part)))

    def claims(self, scope: Scope, exclude_run_key: str, names: Collection[str]) -> list[Claim]:
        """Unfinished runs of the product, on the same endpoint and instance, that may
        have created some of ``names``; each with those names, sorted."""
        found: list[Claim] = []
        others = self._other_runs(scope, exclude_run_key, unfinished=True)
        for run in others:
            hit = sorted(set(self._named(run.run_id, names, _MAY_HAVE_CREATED)))
            if hit:
                found.append(Claim(run, hit))
        return found

    def creators(
        self, scope: Scope, exclude_run_key: str, names: Collection[str]
    ) -> dict[str, RunRecord]:
        """For each of ``names`` created by another run of the product (on the same
        endpoint and instance): the earliest such run."""
        out: dict[str, RunRecord] = {}
        others = self._other_runs(scope, exclude_run_key, unfinished=False)
        for run in others:
            for name in self._named(run.run_id, names, _CREATED):
                out.setdefault(name, run)
        return out

    def output_owners(self, exclude_run_key: str, out: str) -> list[RunRecord]:
        """Completed runs (other than ``exclude_run_key``'s) whose output file is ``out``."""
        rows = self._db.query(_OTHER_COMPLETED, (exclude_run_key,))
        runs = [run_record(r) for r in rows]
        return [r for r in runs if same_file(Path(str(r.params.get("out", ""))), Path(out))]
