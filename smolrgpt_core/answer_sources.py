"""Scores per answer source: the model alone, geometry alone, and the hybrid the node gives.

A hybrid run with ``answer.cross_check`` records, per question, the answer it gave
(``normalized_answer``, from ``source``) and the other path's answer (``cross_check``), so one
run yields all three columns: ``model`` (the model's answer everywhere), ``geometry`` (the
measured answer where there was one, a miss elsewhere) and ``hybrid`` (what was answered).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from smolrgpt_core.warehouse_metric import score_warehouse

SOURCES = ('model', 'geometry', 'hybrid')
MEASURED = ('geometry', 'image')  # sources that are measurements, not the model


def predictions_by_source(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """rows: {id, normalized_answer, source, cross_check} -> {column: [{id, normalized_answer}]}.

    A column without an answer for a question gets '' there (a miss)."""
    columns: dict[str, list[dict[str, Any]]] = {name: [] for name in SOURCES}
    for row in rows:
        given, source = row.get('normalized_answer', ''), row.get('source', 'model')
        other = row.get('cross_check', '')
        measured = source in MEASURED
        by = {
            'model': other if measured else given if source == 'model' else '',
            'geometry': given if measured else '',
            'hybrid': given,
        }
        for name in SOURCES:
            columns[name].append({'id': row['id'], 'normalized_answer': by[name]})
    return columns


def score_by_source(
    gt: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The official score of each column (its report includes the distance abs-rel error)."""
    columns = predictions_by_source(rows)
    return {name: score_warehouse(list(gt), pred).to_dict() for name, pred in columns.items()}


def format_by_source(report: Mapping[str, Any]) -> str:
    """A small table: one row per category, one column per source."""
    names = [n for n in SOURCES if n in report]
    cats = list(report[names[0]]['per_category'])
    lines = ['category      ' + ''.join(f'{n:>10}' for n in names)]
    for cat in cats:
        cells = [report[n]['per_category'][cat]['accuracy'] for n in names]
        total = report[names[0]]['per_category'][cat]['total']
        lines.append(f'{cat:<14}' + ''.join(f'{c:10.2f}' for c in cells) + f'   n={total}')
    lines.append('final         ' + ''.join(f'{report[n]["final_score"]:10.2f}' for n in names))
    if 'distance' in cats:
        rel = [
            report[n]['per_category']['distance'].get('numeric', {}).get('abs_rel') for n in names
        ]
        lines.append(
            'dist abs-rel  '
            + ''.join(f'{r:10.3f}' if r is not None else f'{"-":>10}' for r in rel)
        )
    return '\n'.join(lines)
