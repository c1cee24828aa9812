"""Competition submission: raw model outputs -> normalised answers -> the official format.

``smolrgpt submission generate`` writes ``raw_output.csv`` (``id;image_id;output``, as the
reference does) and ``smolrgpt submission normalize`` turns it into ``submission.json``
(``[{id, normalized_answer}]``), the file the official scorer reads.
"""
