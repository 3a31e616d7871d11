"""``python -m bench.report_example OUT.html [--png OUT.png]``: the example report in docs/report.png.

Real records: passages of Python's own documentation (``app.quality.planted.real_passages``),
from the language reference (pydoc topics) and from standard-library docstrings. Synthetic
records: the bundled SmolLM2-135M asked for a paragraph of Python documentation on each
language-reference topic only (so the library passages have no synthetic counterpart), then
both embedded with the bundled MiniLM and mapped. The page is what ``synth-studio report`` writes;
``--png`` screenshots it with headless Chromium when that is installed, and otherwise saves the
report's summary figure (matplotlib) instead, saying so. Takes a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import tempfile
from pathlib import Path

TEMPLATE = """---
# one paragraph of reference documentation on a topic of the Python language
---
Write one paragraph of the official Python documentation about {{ topic }}.
Use the plain, precise style of the Python language reference. Write only the paragraph."""


def build(path: Path, n_language: int, n_library: int, seed: int = 0) -> None:
    from app.generate.runs import create_run, execute_run, prepare_run
    from app.map.embed import embed_notebook
    from app.map.projection import compute_map
    from app.quality.planted import real_passages
    from app.store.notebook import Notebook
    from backends.embedder import LlamaEmbedder
    from backends.llama_cpp_backend import LlamaCppGenerator
    from backends.protocols import SamplerSettings

    rng = random.Random(seed)
    passages = real_passages()
    language = [p for p in passages if p.source.startswith("pydoc:")]
    library = [p for p in passages if not p.source.startswith("pydoc:")]
    language, library = rng.sample(language, n_language), rng.sample(library, n_library)
    with Notebook.create(path) as nb:
        nb.set_meta("title", "Python docs vs SmolLM2 (example)")
        real = [({"topic": p.source.removeprefix("pydoc:"), "part": "language reference"}, p.text) for p in language]
        real += [({"topic": p.source.rsplit("/", 1)[-1].removesuffix(".py"), "part": "library"}, p.text)
                 for p in library]
        nb.add_imported_rows(real, origin="real", source="python-docs")
        nb.add_imported_rows([({"topic": p.source.removeprefix("pydoc:"), "part": "language reference"}, None)
                              for p in language], origin="real", source="topics")
        nb.add_prompt_version("python-docs", TEMPLATE)
        gen = LlamaCppGenerator(n_ctx=1024)
        try:
            plan = prepare_run(nb, "python-docs", samples=1, seed=seed,
                               settings=SamplerSettings(temperature=0.8, max_tokens=110))
            execute_run(nb, create_run(nb, plan, gen.info), gen)
        finally:
            gen.close()
        emb = LlamaEmbedder()
        try:
            embed_notebook(nb, emb)
        finally:
            emb.close()
        compute_map(nb, min_cluster_size=6)


def screenshot(html: Path, png: Path, width: int = 1100, height: int = 1500) -> bool:
    """A headless Chromium screenshot of the page's top; False when Chromium is not installed."""
    browser = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
    if browser is None:
        return False
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size={width},{height}", f"--screenshot={png.resolve()}", html.resolve().as_uri()],
                   check=True, capture_output=True, timeout=120)
    return png.exists()


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.report_example")
    p.add_argument("html")
    p.add_argument("--png", default=None)
    p.add_argument("--language", type=int, default=90, help="language-reference passages (and generated ones)")
    p.add_argument("--library", type=int, default=60, help="library docstring passages (no synthetic counterpart)")
    p.add_argument("--notebook", default=None, help="report on this notebook, made by an earlier run, instead")
    args = p.parse_args()
    os.environ.setdefault("SYNTH_STUDIO_HOME", tempfile.mkdtemp(prefix="synth-example-"))

    from app.cli.common import cancellable
    from app.jobs import report_job

    if args.notebook:
        path = Path(args.notebook)
    else:
        path = Path(tempfile.mkdtemp()) / "example.db"
        build(path, args.language, args.library)
        print(f"notebook: {path}")
    with cancellable("report") as task:
        page = report_job(path, synthetic="all", task=task)
    out = Path(args.html)
    out.write_text(page.html, encoding="utf-8")
    print(f"wrote {out}: score {page.report.score:.3f} "
          + ", ".join(f"{k} {v:.3f}" for k, v in page.report.parts.items()))
    if args.png:
        png = Path(args.png)
        if screenshot(out, png):
            print(f"wrote {png} (headless Chromium)")
        else:
            from app.report.plots import summary_figure

            summary_figure(page.report).savefig(png, dpi=100)
            print(f"wrote {png}: Chromium is not installed, so this is the report's summary figure (matplotlib), "
                  "not a picture of the page")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
