"""Event data: N-MNIST reading, caching and encoding, a saccade synthesiser, an offline
synthetic default and a checked download.

Quick start::

    from spiking.data import discover, NMNIST, EventEncoder
    choice = discover(None)            # --data, $SPIKING_DATA, cache, or synthetic default
    print(choice.message)
    encoder = EventEncoder(dt_us=1000, window_us=300_000, mode="binary")
    train = NMNIST(choice.path, "train", encoder=encoder, cache=True)
    x, y = train.batch(range(32))      # uint8 [T, B, 2312], labels [B]
"""
from spiking.data.discover import DataChoice, discover, make_synthetic_nmnist, nmnist_root
from spiking.data.download import NMNIST_ARCHIVES, Archive, download_nmnist, fetch, unpack
from spiking.data.encode import EventEncoder, InputLayout, input_layout, rate_encode
from spiking.data.events import (EVENT_DTYPE, SENSOR_SIZE, decode_events, encode_events,
                                 make_events, read_events, write_events)
from spiking.data.glyphs import render_digits
from spiking.data.images import load_images, read_idx
from spiking.data.info import inspect_dataset
from spiking.data.nmnist import NMNIST, Recording, list_recordings, split_train_validation
from spiking.data.paths import cache_root
from spiking.data.synth import DEFAULT_PARAMS, SaccadeParams, SaccadeSynthesizer, synthesize_dataset
from spiking.data.transforms import (CenterCrop, Compose, Denoise, Downsample, FirstSaccade,
                                     SelectPolarity, TimeWindow)

__all__ = [
    "DataChoice", "discover", "make_synthetic_nmnist", "nmnist_root",
    "NMNIST_ARCHIVES", "Archive", "download_nmnist", "fetch", "unpack",
    "EventEncoder", "InputLayout", "input_layout", "rate_encode",
    "EVENT_DTYPE", "SENSOR_SIZE", "decode_events", "encode_events", "make_events",
    "read_events", "write_events",
    "render_digits", "load_images", "read_idx", "inspect_dataset",
    "NMNIST", "Recording", "list_recordings", "split_train_validation", "cache_root",
    "DEFAULT_PARAMS", "SaccadeParams", "SaccadeSynthesizer", "synthesize_dataset",
    "CenterCrop", "Compose", "Denoise", "Downsample", "FirstSaccade", "SelectPolarity",
    "TimeWindow",
]
