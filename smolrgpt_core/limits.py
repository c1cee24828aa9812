"""Bounds on what an input file may make the program allocate, checked before allocating.

A header can claim any size: a 100-byte PNG may say 50000x50000, a 30-byte RLE may say
10^10 pixels. Readers compare the claimed size with these bounds first and refuse with a
sentence naming the file and the bound. Functions take them as arguments with these defaults,
so a caller with other needs passes its own.

The defaults leave room for every camera the product meets (the warehouse frames are
1920x1080 = 2 Mpx): 64 Mpx is an 8192x8192 frame.
"""

from __future__ import annotations

MAX_IMAGE_PIXELS = 8192 * 8192  # width x height of one decoded image (RGB, depth, masks)
MAX_RLE_PIXELS = 8192 * 8192  # H x W one COCO RLE may decode to
MAX_REGIONS = 256  # region masks in one frame (mask files, RLEs or distinct instance ids)
