"""The optional LLM extractor: an Ollama-served model reads the answer out of the raw output.

The reference's route (smolrgpt-reference §6.2), through the official ``ollama`` client instead
of the OpenAI-compatible endpoint: one chat call per answer, with the category's JSON schema as
the structured-output ``format`` so the reply is always one typed field. One deliberate
difference: distances come back with their unit and are converted to metres (the reference
asks for the bare number and so reads "150 cm" as 150 m).

Off by default: the rule normaliser does the same job offline. Needs ``pip install ollama``
and a running ``ollama serve`` with the model pulled.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from smolrgpt_core.text_numbers import UNIT_TO_METRES

log = logging.getLogger(__name__)

DEFAULT_MODEL = 'qwen2.5:14b-instruct'  # the reference's extraction model
DEFAULT_HOST = 'http://127.0.0.1:11434'
DISTANCE_UNITS = ('m', 'cm', 'mm', 'ft', 'in')

SCHEMAS: dict[str, dict[str, Any]] = {
    'left_right': {
        'type': 'object',
        'required': ['answer'],
        'properties': {'answer': {'type': 'string', 'enum': ['left', 'right']}},
    },
    'count': {
        'type': 'object',
        'required': ['answer'],
        'properties': {'answer': {'type': 'integer', 'minimum': 0}},
    },
    'distance': {
        'type': 'object',
        'required': ['answer', 'unit'],
        'properties': {
            'answer': {'type': 'number', 'minimum': 0},
            'unit': {'type': 'string', 'enum': list(DISTANCE_UNITS)},
        },
    },
    'mcq': {
        'type': 'object',
        'required': ['answer'],
        'properties': {'answer': {'type': 'integer', 'minimum': 0}},
    },
}

_COMMON = (
    'You read answers written by a vision-language model about a warehouse image. '
    'Regions are written [Region k]. Reply with JSON only, following the schema. '
)
SYSTEM_PROMPTS = {
    'left_right': _COMMON + 'The question asks whether one object is left or right of another. '
    'Return the side the answer concludes with ("left" or "right"); if the answer repeats the '
    'question, use the part after it.',
    'count': _COMMON + 'The question asks how many objects there are. Return the final number '
    'the answer states, as an integer (words such as "three" mean 3).',
    'distance': _COMMON + 'The question asks for a distance. Return the number the answer '
    'states and its unit (m, cm, mm, ft or in; "m" when no unit is written). A pallet inside '
    'a region is 0 m away.',
    'mcq': _COMMON + 'The question asks which of several regions is meant. Return the region '
    'number k of the [Region k] the answer finally picks.',
}
_TAGS = re.compile(r'<image>|<mask[^>]*>')


class ExtractorUnavailable(RuntimeError):
    """No server at the host, or the model is not there: stop (every answer would fail)."""


def user_message(category: str, question: str, output: str) -> str:
    if category == 'mcq':  # the choice only makes sense with the question's wording
        text = ' '.join(_TAGS.sub(' ', question).split())
        return f'Question: {text}\nAnswer: {output}'
    return output


def parse_reply(category: str, content: str) -> Any | None:
    """The typed answer from the model's JSON reply, or None when it does not fit the schema."""
    try:
        data = json.loads(content)
        answer = data['answer']
    except (json.JSONDecodeError, KeyError, TypeError):
        return None
    if category == 'left_right':
        answer = str(answer).strip().lower()
        return answer if answer in ('left', 'right') else None
    if isinstance(answer, str):  # a number sent as a string still says what it means
        try:
            answer = float(answer.strip())
        except ValueError:
            return None
    if isinstance(answer, bool) or not isinstance(answer, (int, float)) or answer < 0:
        return None
    if category in ('count', 'mcq'):
        return int(answer) if float(answer).is_integer() else None
    unit = str(data.get('unit') or 'm').strip().lower()
    if unit not in UNIT_TO_METRES:
        return None
    return round(float(answer) * UNIT_TO_METRES[unit], 6)


class OllamaExtractor:
    name = 'ollama'

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        host: str = DEFAULT_HOST,
        timeout: float = 120.0,
        temperature: float = 0.0,
    ) -> None:
        try:
            import ollama
        except ImportError as exc:
            raise ExtractorUnavailable(
                'the Ollama route needs the ollama client: pip install ollama'
            ) from exc
        self._ollama = ollama
        self.model = model
        self.host = host
        self.options = {'temperature': temperature}
        self.client = ollama.Client(host=host, timeout=timeout)
        self.calls = 0
        self.bad_replies = 0

    def extract(self, category: str, question: str, output: str) -> Any | None:
        import httpx

        messages = [
            {'role': 'system', 'content': SYSTEM_PROMPTS[category]},
            {'role': 'user', 'content': user_message(category, question, output)},
        ]
        try:
            response = self.client.chat(
                model=self.model, messages=messages, format=SCHEMAS[category], options=self.options
            )
        except ConnectionError as exc:  # the client's wording for httpx.ConnectError
            raise ExtractorUnavailable(
                f'no Ollama server at {self.host} ({exc}); start '
                f'`ollama serve` and `ollama pull {self.model}`'
            ) from exc
        except self._ollama.ResponseError as exc:
            if exc.status_code == 404:
                raise ExtractorUnavailable(
                    f'Ollama at {self.host} has no model {self.model!r} '
                    f'(`ollama pull {self.model}`): {exc.error}'
                ) from exc
            log.warning('Ollama error %s: %s', exc.status_code, exc.error)
            self.bad_replies += 1
            return None
        except httpx.TimeoutException:
            log.warning('Ollama timed out on one answer; the rules read it instead')
            self.bad_replies += 1
            return None
        self.calls += 1
        value = parse_reply(category, response.message.content or '')
        if value is None:
            self.bad_replies += 1
        return value
