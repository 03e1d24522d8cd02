"""The synthesizer room: synthetic rain and snow on real photographs, and the data sets made with them.

The course data cannot be downloaded by the project, so a fresh machine needs pairs it can make itself. This
package sits beside the core (``hw4lib``), which never imports it; ``python -m hw4lib`` adds its commands
(:mod:`.cli`: ``demo-data``, ``study-data``). Modules, one job each:

- :mod:`.photos`: the clean pictures, crops of sample photographs bundled with scikit-image and matplotlib;
- :mod:`.rain`: rain streaks after Rain100L (Yang et al., CVPR 2017); :mod:`.snow`: snow after Snow100K
  (Liu et al., "DesnowNet", IEEE TIP 2018), synthetic flakes or real masks;
- :mod:`.calibrate`: statistics that compare both with real data (how the presets were tuned);
- :mod:`.datasets`: the demo set, sets over a folder of photographs, staged writing;
- :mod:`.study_set`: the loss study's set (Rain100L's real rain, synthetic snow over the same scenes).

The names below are re-exported so that ``from hw4lib import synth; synth.add_rain(...)`` works.
"""

from __future__ import annotations

from hw4lib.data import MANIFEST
from hw4lib.synth.calibrate import EXPECTED_PSNR, OPACITY_BINS, compare_rain, mask_stats, rain_stats
from hw4lib.synth.datasets import (
    LEVEL_WEIGHTS,
    PNG_COMPRESS_LEVEL,
    Scene,
    demo_scenes,
    ensure_demo_dataset,
    generate_demo_dataset,
    generate_photo_dataset,
    split_scenes,
    staged_dataset,
    write_scene_dataset,
    write_split,
)
from hw4lib.synth.photos import PHOTOS, TEST_PHOTOS, TRAIN_PHOTOS, available_photos, load_photo, random_crop
from hw4lib.synth.rain import RAIN_PRESETS, RainParams, RainResult, add_rain
from hw4lib.synth.snow import (
    SNOW_PRESETS,
    FlakeLayer,
    SnowParams,
    SnowResult,
    add_snow,
    composite_snow,
    crop_snow_mask,
    list_snow_masks,
    load_snow_masks,
    snow_alpha,
)
from hw4lib.synth.study_set import build_study_dataset

__all__ = [
    "MANIFEST",
    "PHOTOS",
    "TRAIN_PHOTOS",
    "TEST_PHOTOS",
    "RAIN_PRESETS",
    "SNOW_PRESETS",
    "EXPECTED_PSNR",
    "LEVEL_WEIGHTS",
    "OPACITY_BINS",
    "PNG_COMPRESS_LEVEL",
    "RainParams",
    "FlakeLayer",
    "SnowParams",
    "RainResult",
    "SnowResult",
    "available_photos",
    "load_photo",
    "random_crop",
    "add_rain",
    "snow_alpha",
    "add_snow",
    "composite_snow",
    "list_snow_masks",
    "load_snow_masks",
    "crop_snow_mask",
    "mask_stats",
    "rain_stats",
    "compare_rain",
    "generate_demo_dataset",
    "ensure_demo_dataset",
    "demo_scenes",
    "Scene",
    "write_scene_dataset",
    "generate_photo_dataset",
    "split_scenes",
    "write_split",
    "staged_dataset",
    "build_study_dataset",
]
