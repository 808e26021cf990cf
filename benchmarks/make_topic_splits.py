"""Write same-language topic splits of BEIR sets (``rag_app.evaluation.topic_split``).

    python benchmarks/make_topic_splits.py ../shared/data/scifact-dev ../shared/data/cmrc2018-trial --out .bench/splits
    rag-eval .bench/splits/scifact-dev-topics-in --ood .bench/splits/scifact-dev-topics-out --holes 0.5
"""
from __future__ import annotations

import argparse
from pathlib import Path

from rag_app.evaluation.topic_split import topic_split, write_split


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("datasets", nargs="+", type=Path)
    p.add_argument("--out", type=Path, default=Path(".bench/splits"))
    p.add_argument("--held-out", type=float, default=0.3, help="share of documents held out (whole topics)")
    p.add_argument("--clusters", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    for folder in args.datasets:
        s = topic_split(folder, args.held_out, args.clusters, args.seed)
        kept, held = write_split(folder, args.out, s)
        print(f"{folder.name}: {len(s.kept_docs)} documents kept, {len(s.held_docs)} held out;"
              f" {len(s.in_domain)} in-domain questions -> {kept}, {len(s.off_topic)} off-topic -> {held}")


if __name__ == "__main__":
    main()
