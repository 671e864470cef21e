"""What one run of a journal needs to know about the others of the same product.

Two questions, both asked before a device is reported lost or doubled:

* :meth:`CrossRun.claims`: which unfinished runs may already have created some of
  these DeviceNames (a run killed after its creation call, whose credentials never
  reached an output file)? A new run must not report them as "already exists" and
  move on: that would strand them.
* :meth:`CrossRun.creators`: which earlier run created a name the server now says
  exists, and where did its credentials go? The reason a person reads names it.
* :meth:`CrossRun.output_owners`: which finished run wrote the file a new run is
  about to replace? Its credentials must not vanish with it.

And one repair: :meth:`CrossRun.reopen_for_adoption` puts the devices a run rejected
because the server's check refused them back in play, when the operator re-runs it
with ``--existing adopt``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

from provisioner.journal.models import RunRecord
from provisioner.journal.sqlite import RUN_SELECT, run_record
from provisioner.journal.store import RunStore
from provisioner.paths import same_file

__all__ = ["Claim", "CrossRun", "same_target"]

# Application states from which a creation call may have reached the server: the
# intent is written before the call, so anything earlier created nothing.
_CREATE_SENT = ("INTENT_CREATE", "CREATE", "CREATE_SUCCESS", "CREATE_FAILED", "DONE")
_SLICE = 500


@dataclass(frozen=True, slots=True)
class Claim:
    """An unfinished run that may have created ``names`` (sorted) of another run's input."""

    run: RunRecord
    names: list[str]


def same_target(run: RunRecord, endpoint: str, iot_instance_id: str | None) -> bool:
    """Whether ``run`` worked on the same endpoint and IoT instance (so the same devices)."""
    params = run.params
    return params.get("endpoint") == endpoint and (params.get("iot_instance_id") or None) == (
        iot_instance_id or None
    )


class CrossRun(RunStore):
    """Queries across the runs of one product (see the module docstring)."""

    def _other_runs(
        self, product_key: str, exclude_run_key: str, *, unfinished: bool
    ) -> list[RunRecord]:
        sql = RUN_SELECT + "WHERE product_key = ? AND run_key != ?"
        if unfinished:
            sql += " AND status != 'completed'"
        rows = self._query(sql + " ORDER BY created_at", (product_key, exclude_run_key))
        return [run_record(r) for r in rows]

    def _named(self, run_id: str, names: Collection[str], sql_filter: str) -> Iterator[str]:
        wanted = list(names)
        for start in range(0, len(wanted), _SLICE):
            part = wanted[start : start + _SLICE]
            marks = ",".join("?" * len(part))
            # The filters are constants of this module; every value is bound.
            sql = (
                "SELECT d.device_name FROM devices d "  # noqa: S608
                "LEFT JOIN applications a ON a.app_id = d.app_id "
                f"WHERE d.run_id = ? AND d.device_name IN ({marks}) AND ({sql_filter})"
            )
            rows = self._query(sql, (run_id, *part))
            yield from (str(r[0]) for r in rows)

    def claims(
        self,
        product_key: str,
        endpoint: str,
        iot_instance_id: str | None,
        exclude_run_key: str,
        names: Collection[str],
    ) -> list[Claim]:
        """Unfinished runs of the product that may have created some of ``names``."""
        states = ",".join(f"'{s}'" for s in _CREATE_SENT)
        found: list[Claim] = []
        for run in self._other_runs(product_key, exclude_run_key, unfinished=True):
            if not same_target(run, endpoint, iot_instance_id):
                continue
            hit = sorted(
                set(
                    self._named(
                        run.run_id,
                        names,
                        "d.state IN ('created', 'importing') OR "
                        f"(d.state = 'pending' AND a.state IN ({states}))",
                    )
                )
            )
            if hit:
                found.append(Claim(run, hit))
        return found

    def creators(
        self,
        product_key: str,
        endpoint: str,
        iot_instance_id: str | None,
        exclude_run_key: str,
        names: Collection[str],
    ) -> dict[str, RunRecord]:
        """For each of ``names`` created by another run of the product: that run."""
        out: dict[str, RunRecord] = {}
        for run in self._other_runs(product_key, exclude_run_key, unfinished=False):
            if not same_target(run, endpoint, iot_instance_id):
                continue
            for name in self._named(run.run_id, names, "d.state = 'created'"):
                out.setdefault(name, run)
        return out

    def output_owners(self, exclude_run_key: str, out: str) -> list[RunRecord]:
        """Completed runs (other than ``exclude_run_key``'s) whose output file is ``out``."""
        rows = self._query(
            RUN_SELECT + "WHERE run_key != ? AND status = 'completed' ORDER BY created_at",
            (exclude_run_key,),
        )
        runs = [run_record(r) for r in rows]
        return [r for r in runs if same_file(Path(str(r.params.get("out", ""))), Path(out))]

    def reopen_for_adoption(self, run_id: str) -> int:
        """The devices the server's check refused go back in play as ``adopted`` (they
        will be looked up with QueryDeviceDetail); a completed run is open again.
        Returns how many were reopened."""
        with self._translate(), self._tx() as conn:
            cur = conn.execute(
                "UPDATE devices SET state = 'adopted' "
                "WHERE run_id = ? AND state = 'rejected' AND cause = 'check'",
                (run_id,),
            )
            reopened = cur.rowcount
            if reopened:
                row = conn.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
                detail = f"{reopened} devices reopened for --existing adopt"
                conn.execute(
                    "UPDATE runs SET status = 'failed', error = ?, updated_at = ? WHERE run_id = ?",
                    (detail, self._clock(), run_id),
                )
                if row is not None and row[0] != "failed":
                    self._log(conn, run_id, "run", row[0], "failed", detail)
            return reopened
