#!/usr/bin/env bash
# The partial world's black-box suspects (suites/emoji-web-api.toml): two of its models behind
# a service that post-processes their images, collected as folder suspects. Seeded and
# deterministic (the models' answers are; the steps are), a few seconds on a CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
W=fixtures/world-partial/emoji-web
KEYS=$W/keys/detection
# an infringer served at twice the size, as JPEG q75
attribcheck keys collect --keys "$KEYS" --model $W/models/infringer-rho0.5-s1 \
    --postprocess scale:2 --postprocess jpeg:75 --out $W/api/infringer-rho0.5-s1-2x-jpeg75
# the overlap innocent served through a round trip at half the size: the change that had it attributed
attribcheck keys collect --keys "$KEYS" --model $W/models/innocent-overlap-s0 \
    --postprocess scale:0.5 --postprocess scale:2 --out $W/api/innocent-overlap-s0-half-round-trip
