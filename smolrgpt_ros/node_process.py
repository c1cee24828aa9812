"""The spatial-query node as a child process (for replay-eval --start-node and make demo)."""

from __future__ import annotations

import os
from pathlib import Path
import signal
import subprocess
import sys
import tempfile


class NodeProcess:
    def __init__(
        self,
        checkpoint: str = '',
        backend: str = 'torch',
        extra_params: dict[str, str] | None = None,
        log_path: str | None = None,
    ) -> None:
        # replayed bags publish reliably and their messages can be megabytes: subscribe reliably
        self.params = {
            # rcl refuses `name:=` (empty); without the parameter the node takes its default
            **({'model.checkpoint_dir': checkpoint} if checkpoint else {}),
            'model.backend': backend,
            'qos.reliable': 'true',
            **(extra_params or {}),
        }
        self.log_path = Path(
            log_path or tempfile.mkstemp(prefix='smolrgpt_node_', suffix='.log')[1]
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        argv = [sys.executable, '-m', 'smolrgpt_cli', 'node']
        for name, value in self.params.items():
            argv += ['-p', f'{name}:={value}']
        self._log = open(self.log_path, 'w')  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, env=os.environ.copy()
        )

    def stop(self) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def log_tail(self, chars: int = 2000) -> str:
        return self.log_path.read_text(errors='replace')[-chars:]
