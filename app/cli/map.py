"""CLI, stage 5 (map): ``embed``, ``map``, ``extrema``."""

from __future__ import annotations

import argparse

from app.cli.common import cancellable, print_json
from app.store.notebook import Notebook


def cmd_embed(args: argparse.Namespace) -> int:
    from app.map.embed import embed_notebook
    from backends.embedder import LlamaEmbedder

    with Notebook.open(args.notebook) as nb:
        emb = LlamaEmbedder(args.model)
        try:
            with cancellable("embed", quiet=args.quiet, unit="record") as task:
                done, had = embed_notebook(nb, emb, task)
        finally:
            emb.close()
    print(f"embedded {done} samples with {emb.info.name} ({emb.info.dim}-d); {had} already had a vector")
    return 0


def cmd_map(args: argparse.Namespace) -> int:
    from app.map.projection import compute_map

    with Notebook.open(args.notebook) as nb:
        with cancellable("map", quiet=args.quiet or args.json) as task:
            m = compute_map(nb, method=args.method, seed=args.seed, min_cluster_size=args.min_cluster_size, task=task)
        if args.png:
            from app.map.png import save_map_png

            save_map_png(m, args.png)
    sizes = m.sizes()
    if args.json:
        print_json({"map_id": m.map_id, "method": m.method, "cached": m.cached, "params": m.params,
                     "records": len(m.record_ids),
                     "clusters": [{"cluster": c, "size": n, "label": m.labels.get(c, "noise" if c < 0 else "")}
                                  for c, n in sizes.items()]})
        return 0
    note = " (cached)" if m.cached else ""
    print(f"map {m.map_id}{note}: {len(m.record_ids)} samples, {m.method}, "
          f"{sum(1 for c in sizes if c >= 0)} clusters")
    for c, n in sizes.items():
        print(f"  {'noise' if c < 0 else f'cluster {c}':<11} {n:>6}  {m.labels.get(c, '')}")
    if args.png:
        print(f"wrote {args.png}")
    return 0


def cmd_extrema(args: argparse.Namespace) -> int:
    from app.map.axes import extrema

    with Notebook.open(args.notebook) as nb:
        top, bottom = extrema(nb, args.axis, args.k)
    if args.json:
        print_json({"axis": args.axis, "top": [e.to_dict() for e in top], "bottom": [e.to_dict() for e in bottom]})
        return 0
    for title, rows in (("highest", top), ("lowest", bottom)):
        print(f"{title} {args.axis}:")
        for e in rows:
            text = " ".join(e.text.split())
            print(f"  #{e.record_id:<6} {e.value:>10.4g}  {text[:100]}{'...' if len(text) > 100 else ''}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("embed", help="embed samples (all-MiniLM-L6-v2 by default; only missing vectors)")
    s.add_argument("notebook")
    s.add_argument("--model", default=None, help="any GGUF embedding model (default: the bundled MiniLM)")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_embed)

    s = sub.add_parser("map", help="2-D map and clusters of the embedded samples (UMAP + HDBSCAN)")
    s.add_argument("notebook")
    s.add_argument("--method", choices=["auto", "umap", "pca"], default="auto")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--min-cluster-size", type=int, default=None)
    s.add_argument("--png", default=None, metavar="OUT.png", help="also save a static picture of the map")
    s.add_argument("--json", action="store_true")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_map)

    s = sub.add_parser("extrema", help="the records at both ends of an axis")
    s.add_argument("notebook")
    s.add_argument("--axis", required=True,
                   help="length | tokens | likelihood | perplexity | outlier | centroid | dupes | nearest-real | score:NAME")
    s.add_argument("--k", type=int, default=5)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_extrema)
