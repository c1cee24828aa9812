"""Score reports: a JSON file, a bar chart PNG and a plain-text table for the terminal."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def write_json(path: str | Path, report: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=False) + '\n', encoding='utf-8')
    return path


def bar_chart(
    path: str | Path, scores: dict[str, float], title: str, ylabel: str = 'accuracy (%)'
) -> Path:
    """One bar per category, value printed on top; the y axis is 0-100."""
    import matplotlib

    matplotlib.use('Agg')  # files only; never needs a display
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(scores)
    values = [scores[n] for n in names]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(names) + 1.5), 3.6), dpi=100)
    bars = ax.bar(names, values, color='#3b75af')
    for bar, value in zip(bars, values, strict=True):
        ax.text(
            bar.get_x() + bar.get_width() / 2,
            value + 1,
            f'{value:.1f}',
            ha='center',
            va='bottom',
            fontsize=8,
        )
    ax.set_ylim(0, 110)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis='x', labelrotation=30 if len(names) > 5 else 0, labelsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def format_table(header: list[str], rows: list[list[Any]]) -> str:
    """Fixed-width text table; floats with 2 decimals, None as '-'."""

    def cell(value: Any) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return '-'
        if isinstance(value, float):
            return f'{value:.2f}'
        return str(value)

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(header)]
    lines = ['  '.join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append('  '.join('-' * w for w in widths))
    for row in cells:
        lines.append('  '.join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    return '\n'.join(lines)
