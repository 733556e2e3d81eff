"""The built-in model's report card, through the ONNX runtime path users get.

Held-out split: 1,000 scenes x 5 captions from a seed never used in training;
text->image and image->text Recall@1/5/10, text->image with semantic relevance,
and the two binding probes. Prints one JSON document. Usage:

    python benchmarks/report_builtin.py [--model builtin:shapes-tiny] [--n 1000]
"""

from __future__ import annotations

import argparse
import json
import time

from clipdex.encoders import load_encoder
from clipdex.synth.probes import binding_probes, synth_retrieval


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="builtin:shapes-tiny")
    parser.add_argument("--n", type=int, default=1000)
    args = parser.parse_args()
    enc = load_encoder(args.model)
    t = time.perf_counter()
    out: dict[str, object] = {"model": args.model, "test_images": args.n, "captions_per_image": 5}
    retrieval = synth_retrieval(enc.encode_images, enc.encode_texts, n=args.n, seed=20_261_128,
                                image_size=enc.image_size)
    out.update({k: round(v, 4) for k, v in retrieval.items()})
    probes = binding_probes(enc.encode_images, enc.encode_texts, n=args.n, seed=31_337, image_size=enc.image_size)
    out["binding_color_swap"] = round(probes["color_swap"], 4)
    out["binding_relation_flip"] = round(probes["relation_flip"], 4)
    out["probe_pairs"] = int(probes["n"])
    out["seconds"] = round(time.perf_counter() - t, 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
