"""Where things live: the landing layout (CONTRACT section 1) and the warehouse."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Landing:
    root: str

    def event_glob(self, stream: str, day: date) -> str:
        return f"{self.root}/{stream}/dt={day.isoformat()}/hour=*/*.{{jsonl,jsonl.gz}}"

    def dim_glob(self, dim: str, day: date) -> str:
        return f"{self.root}/dims/{dim}/dt={day.isoformat()}/*.{{jsonl,jsonl.gz}}"

    @property
    def truth(self) -> str:
        """Generator ground truth; outside the contract's folders, never ingested."""
        return f"{self.root}/_truth"


@dataclass(frozen=True)
class Warehouse:
    root: str

    def bronze(self, name: str) -> str:
        return f"{self.root}/bronze/{name}"

    def silver(self, name: str) -> str:
        return f"{self.root}/silver/{name}"

    def gold(self, name: str) -> str:
        return f"{self.root}/gold/{name}"

    @property
    def quarantine(self) -> str:
        return f"{self.root}/bronze/quarantine"

    def report_dir(self, day: date) -> str:
        return f"{self.root}/reports/dt={day.isoformat()}"

    def report(self, day: date) -> str:
        return f"{self.report_dir(day)}/run_report.json"


def resolve_uri(root: str, path: str) -> str:
    """``path`` as it is when absolute or a URI, else under ``root`` (train.table under the warehouse, ...)."""
    return path if "://" in path or path.startswith("/") else f"{root}/{path}"
