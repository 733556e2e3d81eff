"""The ``clipdex`` command line: every command registered here, explicitly, by topic.

Each command is a thin wrapper over a public library function (see the topic
modules); :mod:`clipdex.cli.output` prints and maps errors to exit codes.
"""

from __future__ import annotations

import os
import sys

import typer

from clipdex.cli import collection, curate, embeddings, evaluate, explore, models, serve, synth, train
from clipdex.cli.output import run
from clipdex.quiet import VERBOSE_ENV

__all__ = ["app", "app_main", "main"]

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="clipdex: index, search, curate, train and evaluate image-text collections.")



@app.callback()
def _global_options(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Let third-party libraries (Ray, faiss, "
                                 "transformers) print their own progress bars, warnings and logs"),
) -> None:
    """clipdex: index, search, curate, train and evaluate image-text collections."""
    if verbose:
        os.environ[VERBOSE_ENV] = "1"  # read by the parts that quiet third parties, in workers too


# collection
app.command("index")(collection.index)
app.command("search")(collection.search)
app.command("heatmap")(collection.heatmap)
app.command("info")(collection.info)
app.command("remove")(collection.remove)
app.command("verify")(collection.verify)
app.command("repair")(collection.repair)
app.command("compact")(collection.compact)
app.command("duplicates")(collection.duplicates)
# exploring a collection: the map, clusters, scores, tags, probes
app.command("map")(explore.map_cmd)
app.command("clusters")(explore.clusters_cmd)
app.command("scores")(explore.scores_cmd)
app.command("tag")(explore.tag_cmd)
app.add_typer(explore.probe_app, name="probe")
# curation and clip-retrieval embedding folders
app.command("curate")(curate.curate_cmd)
app.command("embed")(embeddings.embed_cmd)
app.command("import-embeddings")(embeddings.import_embeddings_cmd)
app.command("build-index")(embeddings.build_index_cmd)
app.command("merge-index")(embeddings.merge_index_cmd)
app.command("search-index")(embeddings.search_index_cmd)
# evaluation, known models
app.add_typer(evaluate.evaluate_app, name="eval")
app.add_typer(models.models_app, name="models")
# synthetic data, training, export, serving
app.command("synth")(synth.synth)
app.command("train")(train.train_cmd)
app.command("export")(train.export)
app.command("serve")(serve.serve)


def app_main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (tests call this in-process)."""
    return run(app, argv)


def main() -> None:
    sys.exit(app_main())
