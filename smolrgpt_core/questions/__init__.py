"""Warehouse questions without a language model: what a question asks (``plan_question``)
and the dataset-style answer to it (``render_answer``)."""

from __future__ import annotations

from smolrgpt_core.questions.answer import render_answer
from smolrgpt_core.questions.plan import (
    KINDS,
    Closest,
    CountInBuffer,
    Distance,
    DistanceExtremes,
    Extreme,
    IsLeft,
    NotUnderstood,
    Operation,
    QuestionPlan,
)
from smolrgpt_core.questions.understand import plan_question

__all__ = [
    'KINDS',
    'Closest',
    'CountInBuffer',
    'Distance',
    'DistanceExtremes',
    'Extreme',
    'IsLeft',
    'NotUnderstood',
    'Operation',
    'QuestionPlan',
    'plan_question',
    'render_answer',
]
