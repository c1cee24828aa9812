"""Do a checkpoint's region vectors know where each region is? A linear probe.

The decoder can only answer left/right questions if the pooled region vectors carry the
region's image column in a form it can read. This fits, on one part of a dataset's region
descriptions, a ridge regression from the pooled vectors (RGB and depth, concatenated) to the
mask centroid column (0 = left edge, 1 = right edge) and a logistic regression for "right half
of the image", then reports both on the rest: R^2 and accuracy. A vision side that scores low
here (the embedded model once had R^2 0.65 at initialisation) caps every spatial category.

Decodable is not the same as loud: it also reports the share of the vectors' variance that the
column explains linearly. A tiny share (the embedded model's random refiners left 2 %) means
the column is a faint direction among louder ones, and training picks it up late or never.

    python -m training.probe --checkpoint models/smolrgpt-tiny-synthetic --data-root SYNTH
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
import sys

import numpy as np
import torch

from smolrgpt_core.modeling.smolrgpt import SmolRGPT
from smolrgpt_core.preprocess import masks_to_tensor
from training.collate import load_image
from training.data.samples import Sample
from training.data.sensors import model_depth_path
from training.datasets import load_examples


@dataclass(frozen=True)
class ProbeResult:
    n_fit: int
    n_test: int
    r2: float  # centroid column, ridge regression
    half_accuracy: float  # left vs right half, logistic regression
    majority_accuracy: float  # the more frequent half, for scale
    variance_share: float  # of the raw vectors' variance, explained linearly by the column

    def line(self) -> str:
        return (
            f'region-position probe: centroid column R^2 {self.r2:.3f}, left/right half '
            f'accuracy {100 * self.half_accuracy:.1f}% (majority '
            f'{100 * self.majority_accuracy:.1f}%), variance share of the column '
            f'{100 * self.variance_share:.1f}%, fit {self.n_fit} / test {self.n_test}'
        )


@torch.inference_mode()
def region_positions(model: SmolRGPT, examples: Sequence[Sample]) -> tuple[np.ndarray, np.ndarray]:
    """-> pooled [rgb, depth] vectors [N, 2D] and centroid columns in [0, 1], one per mask."""
    feats, cols = [], []
    metric = model.cfg.depth_input == 'metric'
    for ex in examples:
        if not ex.rle or ex.depth_path is None:
            raise ValueError(f'example {ex.id} has no masks or no depth image to probe')
        masks = masks_to_tensor(ex.rle)  # [M, H, W]
        frame = model.encode_frame(
            load_image(Path(ex.rgb_path), 'rgb', model.cfg),
            load_image(
                model_depth_path(Path(ex.rgb_path), ex.depth_path, metric), 'depth', model.cfg
            ),
            masks,
        )
        feats.append(torch.cat((frame.rgb_regions, frame.depth_regions), 1).float().numpy())
        per_column = masks.float().sum(1)  # [M, H, W] -> [M, W]
        columns = torch.arange(masks.shape[2], dtype=torch.float32)
        area = per_column.sum(1).clamp_min(1)  # a vanished mask has no centroid: column 0
        cols.append(((per_column @ columns) / area / masks.shape[2]).numpy())
    return np.concatenate(feats), np.concatenate(cols)


def fit_probe(
    features: np.ndarray, columns: np.ndarray, fit_fraction: float = 0.75
) -> ProbeResult:
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.preprocessing import StandardScaler

    n_fit = int(len(columns) * fit_fraction)
    if n_fit < 8 or len(columns) - n_fit < 8:
        raise ValueError(f'the probe needs at least 32 regions, got {len(columns)}')
    scaler = StandardScaler().fit(features[:n_fit])
    x_fit, x_test = scaler.transform(features[:n_fit]), scaler.transform(features[n_fit:])
    r2 = Ridge(alpha=1.0).fit(x_fit, columns[:n_fit]).score(x_test, columns[n_fit:])
    right = columns > 0.5
    if right[:n_fit].all() or not right[:n_fit].any():
        raise ValueError('every fitted region lies in the same half of the image')
    clf = LogisticRegression(max_iter=5000).fit(x_fit, right[:n_fit])
    majority = max(right[n_fit:].mean(), 1 - right[n_fit:].mean())
    return ProbeResult(
        n_fit,
        len(columns) - n_fit,
        float(r2),
        float(clf.score(x_test, right[n_fit:])),
        float(majority),
        variance_share(features, columns),
    )


def variance_share(features: np.ndarray, columns: np.ndarray) -> float:
    """Fraction of the total variance of ``features`` [N, D] that a linear function of
    ``columns`` [N] explains (all N vectors, unscaled, as the decoder receives them)."""
    centred = features - features.mean(0)
    x = (columns - columns.mean())[:, None]  # [N, 1]
    coef = (x.T @ centred) / max(float((x**2).sum()), 1e-12)  # [1, D] least squares per dim
    total = float((centred**2).sum())
    return float(((x @ coef) ** 2).sum() / total) if total > 0 else 0.0


def probe_checkpoint(
    checkpoint: str | Path, data_root: str | Path, split: str = 'train', limit: int = 1000
) -> ProbeResult:
    """Probe on the synthetic (or OSD-style parquet) region descriptions of ``data_root``."""
    model = SmolRGPT.from_pretrained(checkpoint).eval()
    examples = load_examples('regions', data_root, split)[:limit]
    return fit_probe(*region_positions(model, examples))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog='python -m training.probe',
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument('--checkpoint', required=True, type=Path)
    parser.add_argument(
        '--data-root',
        required=True,
        type=Path,
        help='a `smolrgpt synth` output or a region-description parquet set',
    )
    parser.add_argument('--split', default='train')
    parser.add_argument('--limit', type=int, default=1000, help='examples to probe')
    args = parser.parse_args(argv)
    try:
        result = probe_checkpoint(args.checkpoint, args.data_root, args.split, args.limit)
    except (ValueError, FileNotFoundError) as err:
        print(f'probe: {err}', file=sys.stderr)
        return 2
    print(result.line())
    return 0


if __name__ == '__main__':
    sys.exit(main())
