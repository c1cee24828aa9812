"""What a run reports as it goes: ``metrics.jsonl`` records, tensorboard scalars and the
progress bar; only rank 0 writes."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class RunLog:
    def __init__(self, output_dir: Path, *, main: bool, tensorboard: bool) -> None:
        self.main = main
        self.metrics_path = output_dir / 'metrics.jsonl'
        self.writer = None
        if main and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(output_dir / 'tensorboard'))
            except ImportError:
                log.warning('tensorboard is not installed; no tensorboard logs')

    def scalar(self, tag: str, value: float, step: int) -> None:
        if self.writer is not None:
            self.writer.add_scalar(tag, value, step)

    def record(self, record: dict[str, Any]) -> None:
        """One line of ``metrics.jsonl``."""
        if self.main:
            with open(self.metrics_path, 'a', encoding='utf-8') as f:
                f.write(json.dumps(record) + '\n')

    def progress(self, total: int, initial: int, enabled: bool, desc: str) -> Any:
        from tqdm import tqdm

        return tqdm(
            total=total,
            initial=initial,
            disable=not (self.main and enabled),
            desc=desc,
            unit='step',
        )

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
