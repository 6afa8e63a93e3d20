"""Event data: N-MNIST reading, caching and encoding, a saccade synthesiser, an offline
synthetic default and a checked download.

Quick start::

    from spiking.data import discover, NMNIST, EventEncoder
    choice = discover(None)            # --data, $SPIKING_DATA, cache, or synthetic default
    print(choice.message)
    encoder = EventEncoder(dt_us=1000, window_us=300_000, mode="binary")
    train = NMNIST(choice.path, "train", encoder=encoder, cache=True)
    x, y = train.batch(range(32))      # uint8 [T, B, 2312], labels [B]
    x, y = train.batch(range(32), sparse=True)   # the same as SpikeCounts (nonzero cells)
"""
from spiking._lazy import lazy_exports

_EXPORTS = {
    "DataChoice": "spiking.data.discover",
    "discover": "spiking.data.discover",
    "make_synthetic_nmnist": "spiking.data.discover",
    "nmnist_root": "spiking.data.discover",
    "NMNIST_ARCHIVES": "spiking.data.download",
    "Archive": "spiking.data.download",
    "download_nmnist": "spiking.data.download",
    "fetch": "spiking.data.download",
    "unpack": "spiking.data.download",
    "EventEncoder": "spiking.data.encode",
    "InputLayout": "spiking.data.encode",
    "input_layout": "spiking.data.encode",
    "rate_encode": "spiking.data.encode",
    "EVENT_DTYPE": "spiking.data.events",
    "SENSOR_SIZE": "spiking.data.events",
    "decode_events": "spiking.data.events",
    "encode_events": "spiking.data.events",
    "make_events": "spiking.data.events",
    "read_events": "spiking.data.events",
    "write_events": "spiking.data.events",
    "render_digits": "spiking.data.glyphs",
    "load_images": "spiking.data.images",
    "read_idx": "spiking.data.images",
    "inspect_dataset": "spiking.data.info",
    "NMNIST": "spiking.data.nmnist",
    "Copies": "spiking.data.nmnist",
    "Recording": "spiking.data.nmnist",
    "list_recordings": "spiking.data.nmnist",
    "split_train_validation": "spiking.data.nmnist",
    "cache_root": "spiking.data.paths",
    "DEFAULT_PARAMS": "spiking.data.synth",
    "SaccadeParams": "spiking.data.synth",
    "SaccadeSynthesizer": "spiking.data.synth",
    "synthesize_dataset": "spiking.data.synth",
    "CenterCrop": "spiking.data.transforms",
    "Compose": "spiking.data.transforms",
    "Denoise": "spiking.data.transforms",
    "Downsample": "spiking.data.transforms",
    "FirstSaccade": "spiking.data.transforms",
    "SelectPolarity": "spiking.data.transforms",
    "TimeWindow": "spiking.data.transforms",
    "Translate": "spiking.data.transforms",
    "translations": "spiking.data.transforms",
}


__getattr__ = lazy_exports("spiking.data", _EXPORTS, globals())


__all__ = [
    "DataChoice", "discover", "make_synthetic_nmnist", "nmnist_root",
    "NMNIST_ARCHIVES", "Archive", "download_nmnist", "fetch", "unpack",
    "EventEncoder", "InputLayout", "input_layout", "rate_encode",
    "EVENT_DTYPE", "SENSOR_SIZE", "decode_events", "encode_events", "make_events",
    "read_events", "write_events",
    "render_digits", "load_images", "read_idx", "inspect_dataset",
    "NMNIST", "Copies", "Recording", "list_recordings", "split_train_validation", "cache_root",
    "DEFAULT_PARAMS", "SaccadeParams", "SaccadeSynthesizer", "synthesize_dataset",
    "CenterCrop", "Compose", "Denoise", "Downsample", "FirstSaccade", "SelectPolarity",
    "TimeWindow", "Translate", "translations",
]
