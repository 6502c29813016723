"""The benchmark table: every row is a measured figure, its baseline and the target."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Row:
    name: str
    value: float
    unit: str
    baseline: float | None = None  # same unit, measured in the same run
    baseline_name: str = ""
    target: str = ""
    ok: bool | None = None  # whether the target is met (None: no target)

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        return self.value / self.baseline  # type: ignore[operator]


def render(rows: list[Row]) -> str:
    header = ("benchmark", "value", "baseline", "ratio", "target", "met")
    lines = [header]
    for r in rows:
        lines.append(
            (
                r.name,
                f"{r.value:,.3f} {r.unit}",
                f"{r.baseline:,.3f} {r.unit} ({r.baseline_name})"
                if r.baseline is not None
                else "-",
                f"{r.ratio:.2f}x" if r.ratio is not None else "-",
                r.target or "-",
                {True: "yes", False: "NO", None: "-"}[r.ok],
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for i, line in enumerate(lines):
        out.append("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)))
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)
