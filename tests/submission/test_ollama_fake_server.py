"""The Ollama extractor route against a FAKE local server: no real LLM runs here.

``FakeOllama`` is test code: an HTTP server on 127.0.0.1 that speaks the Ollama ``/api/chat``
JSON contract (non-streaming) and "extracts" answers with a few regular expressions. It checks
what the official ``ollama`` client sends (model, messages, the JSON schema in ``format``).
"""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import json
from pathlib import Path
import re
import threading
from typing import Any

import pytest

from smolrgpt_cli.main import main
from training.submission.normalize import Question, build_submission

pytest.importorskip('ollama')


class FakeOllama(ThreadingHTTPServer):
    def __init__(self, models: tuple[str, ...] = ('fake-extractor',)) -> None:
        super().__init__(('127.0.0.1', 0), _Handler)
        self.models = models
        self.requests: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f'http://127.0.0.1:{self.server_address[1]}'


def _fake_extract(request: dict[str, Any]) -> str:
    """A canned 'LLM': the JSON reply for the schema in ``format``."""
    schema = request['format']['properties']
    text = request['messages'][-1]['content']
    if 'GARBLE' in text:
        return 'this is not JSON'
    if schema['answer'].get('enum') == ['left', 'right']:
        return json.dumps({'answer': 'left' if 'left' in text.lower() else 'right'})
    if 'unit' in schema:
        number, unit = re.search(r'(\d+(?:\.\d+)?)\s*(cm|m)\b', text).groups()
        return json.dumps({'answer': float(number), 'unit': unit})
    if text.startswith('Question:'):  # mcq: the region the answer picks
        return json.dumps({'answer': int(re.findall(r'Region (\d+)', text)[-1])})
    words = {'one': 1, 'two': 2, 'three': 3, 'four': 4}
    found = re.search(r'\b(one|two|three|four|\d+)\b', re.sub(r'\[Region \d+\]', '', text))
    return json.dumps({'answer': words.get(found.group(1)) or int(found.group(1))})


class _Handler(BaseHTTPRequestHandler):
    server: FakeOllama

    def do_POST(self) -> None:  # the name http.server dispatches to
        body = json.loads(self.rfile.read(int(self.headers['Content-Length'])))
        self.server.requests.append({'path': self.path, **body})
        if self.path != '/api/chat':
            return self._send(404, {'error': f'unknown path {self.path}'})
        if body.get('model') not in self.server.models:
            return self._send(
                404, {'error': f'model "{body.get("model")}" not found, try pulling it first'}
            )
        self._send(
            200,
            {
                'model': body['model'],
                'created_at': '2025-06-30T00:00:00Z',
                'message': {'role': 'assistant', 'content': _fake_extract(body)},
                'done': True,
                'done_reason': 'stop',
                'total_duration': 1000,
            },
        )

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def fake_ollama() -> Iterator[FakeOllama]:
    server = FakeOllama()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


QUESTIONS = [
    Question('lr', 'Is the pallet <mask> to the left of the pallet <mask>?'),
    Question('ct', 'How many pallets are in the leftmost buffer region <mask>?'),
    Question('ds', 'What is the distance between the pallet <mask> and the pallet <mask>?'),
    Question('mc', 'Which pallet among <mask> <mask> <mask> is the leftmost?'),
    Question('bad', 'How far is the pallet <mask> from the pallet <mask>?'),
]
OUTPUTS = {
    'lr': 'The pallet [Region 0] is to the left of the pallet [Region 1].',
    'ct': 'The leftmost buffer region [Region 0] has three pallets.',
    'ds': 'The pallets are 150 cm apart.',
    'mc': 'The leftmost pallet is [Region 2].',
    'bad': 'GARBLE 4.2 meters',
}


def test_ollama_route_with_fake_server_no_real_llm(fake_ollama: FakeOllama) -> None:
    from training.submission.ollama_extractor import SCHEMAS, OllamaExtractor

    extractor = OllamaExtractor('fake-extractor', fake_ollama.url)
    submission, stats = build_submission(QUESTIONS, OUTPUTS, extractor=extractor)
    assert {s['id']: s['normalized_answer'] for s in submission} == {
        'lr': 'left',
        'ct': '3',
        'ds': '1.5',
        'mc': '2',
        'bad': '4.2',
    }
    assert stats.extractor_misses == 1 and stats.answer_default == 0  # 'bad': the rules
    assert (extractor.calls, extractor.bad_replies) == (5, 1)
    sent = fake_ollama.requests
    assert [r['path'] for r in sent] == ['/api/chat'] * 5
    assert all(r['model'] == 'fake-extractor' and r['stream'] is False for r in sent)
    assert sent[0]['format'] == SCHEMAS['left_right']
    assert sent[2]['format'] == SCHEMAS['distance']
    assert sent[0]['messages'][0]['role'] == 'system'
    assert sent[3]['messages'][1]['content'].startswith('Question: Which pallet among')
    assert '<mask>' not in sent[3]['messages'][1]['content']


def test_ollama_cli_with_fake_server_no_real_llm(
    fake_ollama: FakeOllama, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    questions = tmp_path / 'test.json'
    questions.write_text(
        json.dumps(
            [
                {
                    'id': q.id,
                    'image': 'x.png',
                    'conversations': [{'from': 'human', 'value': q.question}],
                }
                for q in QUESTIONS
            ]
        )
    )
    raw = tmp_path / 'raw_output.csv'
    raw.write_text(
        'id;image_id;output\n' + ''.join(f'{i};x.png;{o}\n' for i, o in OUTPUTS.items())
    )
    out = tmp_path / 'submission.json'
    args = [
        'submission',
        'normalize',
        '--raw',
        str(raw),
        '--questions',
        str(questions),
        '--out',
        str(out),
        '--extractor',
        'ollama',
        '--ollama-host',
        fake_ollama.url,
    ]
    assert main([*args, '--ollama-model', 'fake-extractor']) == 0
    assert len(json.loads(out.read_text())) == len(QUESTIONS)
    stats = json.loads((tmp_path / 'submission.stats.json').read_text())
    assert stats['ollama']['calls'] == 5
    capsys.readouterr()
    # a model the server does not have: one clear line, exit 2
    assert main([*args, '--ollama-model', 'missing-model']) == 2
    assert 'ollama pull missing-model' in capsys.readouterr().err


def test_ollama_unreachable_is_one_clear_error(tmp_path: Path) -> None:
    from training.submission.ollama_extractor import ExtractorUnavailable, OllamaExtractor

    server = FakeOllama()
    url = server.url
    server.server_close()  # nothing listens on that port any more
    extractor = OllamaExtractor('fake-extractor', url, timeout=5)
    with pytest.raises(ExtractorUnavailable, match='no Ollama server'):
        build_submission(QUESTIONS[:1], OUTPUTS, extractor=extractor)
