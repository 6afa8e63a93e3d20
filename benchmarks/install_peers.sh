#!/usr/bin/env bash
# Peers used only by the benchmarks. norse and tonic declare torchvision/librosa,
# which would pull a second, 5 GB torch build; they run fine without them, so
# they are installed without their declared dependencies plus what they import.
set -euo pipefail
pip install -q --no-deps norse==1.1.0 nir nirtorch tonic==1.7.0 snntorch==1.0.0
pip install -q h5py importRosbag expelliarmus requests
