"""The ``recoup`` command: wires features, training and serving. No logic of its own.

Each command runs a function of the module of its stage, imported with a plain ``import`` (so the
import graph shows ``recoup.cli`` -> every command module)::

    generate                 features.sources.synthetic.generate.generate_to_dir
    import-x12               features.sources.x12.importer.import_x12_cli
    ingest                   features.store.ingest.ingest_cli
    store info               features.store.info.store_info_cli
    rebuild-rulebook         features.rulebook.build.main
    train                    training.train.train_cli
    evaluate                 training.evaluate.evaluate_cli
    backtest                 training.backtest.backtest_cli
    monitor                  training.monitor.monitor_cli
    score                    serving.batch.score_cli
    audit                    serving.audit.audit_cli
    serve                    serving.serve.serve_cli
    keys create|list|revoke  serving.security.keys_create_cli, keys_list_cli, keys_revoke_cli
    workbench migrate|user   serving.workbench.cli.workbench_cli, migrate_cli, user_add_cli
    demo                     recoup.demo.run_demo

The imports are inside the commands because the stage modules load numpy, pandas and LightGBM: at the
top of this module they would make ``recoup --help`` take 5-6 s instead of 0.3 s (measured).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Callable, List, Optional

import typer

from features.errors import RecoupError
from features.settings import quiet_telemetry, setup_cli_logging

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="recoup: predict which healthcare claims will be recouped, and why, before submission.",
    pretty_exceptions_enable=False,
)


_OVERWRITE_DIR = (
    "replace --out whole even when it is a non-empty folder this command did not write "
    "(without it such a folder is refused; an earlier output of the command is replaced anyway)"
)


_SINCE = "first submission date of the window, YYYY-MM-DD (default: the first date of the data)"
_UNTIL = "last submission date of the window, YYYY-MM-DD (default: the last date of the data)"


#: the one ``--cluster`` option of train, evaluate, score, audit and generate (features/cluster/client.py)
ClusterOption = Annotated[
    Optional[str],
    typer.Option(
        "--cluster",
        help="Dask scheduler address or local[:N]; default $RECOUP_DASK_SCHEDULER; without it, one process "
        "(on a remote scheduler: $RECOUP_DASK_SCRATCH, a folder the workers share; docs/scale.md)",
    ),
]


def _cluster_kw(cluster: Optional[str]) -> dict:
    """``{"cluster": spec}`` when a cluster is asked for (the option or RECOUP_DASK_SCHEDULER), else nothing: a
    command without a cluster calls its function exactly as before (no Dask)."""
    from features.cluster.client import cluster_spec

    spec = cluster_spec(cluster)
    return {"cluster": spec} if spec else {}


def _run(fn: Callable, *args, **kwargs):
    """Run a command: telemetry off; a RecoupError is one line and exit 2, Ctrl-C exit 130."""
    quiet_telemetry()
    try:
        return fn(*args, **kwargs)
    except ModuleNotFoundError as exc:
        typer.secho(
            f"error: a dependency is missing ({exc.name}); run `make setup` (installs every extra)",
            err=True,
            fg=typer.colors.RED,
        )
        raise typer.Exit(2) from None
    except RecoupError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        typer.secho("interrupted", err=True)
        raise typer.Exit(130) from None


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"recoup {version('recoup')}")
        except PackageNotFoundError:  # run from a checkout that is not installed
            typer.echo("recoup (not installed)")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="debug logging; also other libraries' warnings"),
    show_version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="print the version and exit"
    ),
) -> None:
    setup_cli_logging(verbose)


class _Format(str, Enum):
    """Table file formats of a written history."""

    csv = "csv"
    parquet = "parquet"


class _World(str, Enum):
    """The generator's worlds (features.sources.synthetic.worlds.WORLDS; tests check they match)."""

    baseline = "baseline"
    drift = "drift"
    audit_program = "audit-program"
    ncci_churn = "ncci-churn"
    new_providers = "new-providers"
    short = "short"
    cause_mix = "cause-mix"
    mixed = "mixed"


@app.command()
def generate(
    out: Path = typer.Option(..., "--out", help="directory to write the claims history to"),
    claims: int = typer.Option(20_000, "--claims", min=10, help="number of claims"),
    seed: int = typer.Option(7, "--seed", help="random seed (same seed, same data)"),
    recoupment_rate: float = typer.Option(
        0.05, "--recoupment-rate", min=0.0, max=0.5, help="target share of claims recouped"
    ),
    fmt: _Format = typer.Option("csv", "--format", help="file format of the tables: csv or parquet"),
    overwrite: bool = typer.Option(False, "--overwrite", help=_OVERWRITE_DIR),
    world: _World = typer.Option(
        "baseline",
        "--world",
        help="realism preset: baseline (default, unchanged); drift (20% of providers change habits at a date); "
        "audit-program (a payer audits coding and documentation from mid-history, faster lag); ncci-churn (PTP "
        "edits added/deleted by quarter, the added ones unknown to the shipped rulebook); new-providers (30% "
        "join during the history); short (540 days); cause-mix (coding-heavy mix, causes and lags by payer); "
        "mixed (all but short). Non-baseline worlds also write DIR/world.json",
    ),
    cluster: ClusterOption = None,
    shards: Optional[int] = typer.Option(
        None,
        "--shards",
        min=1,
        max=1000,
        help="with --cluster: the number of independent shards generated by tasks (default: one per 250k claims; "
        "alone: on a local cluster); same seed and shards, same data",
    ),
) -> None:
    """Write a synthetic claims history (and DIR/oracle.csv) in the data contract; with --cluster, a claims store
    generated in shards on a Dask cluster (docs/scale.md)."""

    def go():
        from features.sources.synthetic.generate import generate_to_dir

        summary = generate_to_dir(
            out,
            n_claims=claims,
            seed=seed,
            recoupment_rate=recoupment_rate,
            fmt=fmt.value,
            overwrite=overwrite,
            world=world.value,
            **_cluster_kw(cluster),
            shards=shards,
        )
        typer.echo(summary)

    _run(go)


@app.command("import-x12")
def import_x12(
    files: List[Path] = typer.Argument(..., help="837 and 835 files, folders (searched recursively) or globs"),
    out: Path = typer.Option(..., "--out", help="the claims store to ingest into: new, empty or a store"),
    skip_invalid: bool = typer.Option(
        False, "--skip-invalid", help="ingest the good transactions; put the bad ones in the store's quarantine"
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="replace a folder that is not a store (e.g. an old import-x12 CSV folder) whole"
    ),
) -> None:
    """Alias of `recoup ingest PATH... --into DIR` (X12 837/835 into a claims store; docs/store.md)."""

    def go():
        from features.sources.x12.importer import import_x12_cli

        import_x12_cli(files, out, overwrite=overwrite, skip_invalid=skip_invalid)

    _run(go)


@app.command()
def ingest(
    paths: List[str] = typer.Argument(
        ...,
        help="X12 837/835 files, contract table files (claims, claim_lines, coverage, providers, recoupments, "
        "reviews as .csv/.csv.gz/.parquet), folders (read recursively) or glob patterns",
    ),
    into: Path = typer.Option(..., "--into", help="the claims store folder (created when new; docs/store.md)"),
    skip_invalid: bool = typer.Option(
        False,
        "--skip-invalid",
        help="ingest the good units and put the bad ones with their reasons in STORE/quarantine/<ingest>/ "
        "(default: any problem and nothing is written)",
    ),
    wait: float = typer.Option(
        60.0, "--wait", min=0.0, max=86_400.0, help="seconds to wait for another ingest into the same store to finish"
    ),
) -> None:
    """Add files to a claims store, atomically and idempotently (what is already there is counted, not added)."""

    def go():
        from features.store.ingest import ingest_cli

        ingest_cli(paths, into, skip_invalid=skip_invalid, wait=wait)

    _run(go)


store_app = typer.Typer(no_args_is_help=True, help="Claims stores (docs/store.md).")
app.add_typer(store_app, name="store")


@store_app.command("info")
def store_info(
    store: Path = typer.Argument(..., help="the claims store folder"),
) -> None:
    """Claims by month and payer, last ingest, units and quarantine, label maturity under the default horizon."""

    def go():
        from features.store.info import store_info_cli

        store_info_cli(store)

    _run(go)


@app.command()
def train(
    data: Path = typer.Option(..., "--data", help="claims history directory or claims store"),
    as_of: Optional[str] = typer.Option(
        None, "--as-of", help="train on what was known on this date, YYYY-MM-DD (default: the data's last date)"
    ),
    horizon_days: int = typer.Option(
        365, "--horizon-days", min=1, help="label: recouped within this many days after payment"
    ),
    promote: bool = typer.Option(
        False, "--promote", help="make the new version the champion unconditionally (not with --promote-if-better)"
    ),
    promote_if_better: bool = typer.Option(
        False,
        "--promote-if-better",
        help="make the new version the champion only if it passes the promotion gate against the champion on the "
        "forward part of the latest window (docs/training.md); not with --promote",
    ),
    config: Optional[Path] = typer.Option(None, "--config", help="training config (YAML)"),
    n_estimators: Optional[int] = typer.Option(
        None, "--n-estimators", min=1, max=100_000, help="cap on the trees of each model (overrides the config)"
    ),
    cluster: ClusterOption = None,
) -> None:
    """Train the likelihood and cause models, log to MLflow and register a version (challenger; champion with
    --promote, or with --promote-if-better through the gate)."""

    def go():
        from training.train import train_cli

        train_cli(
            data=data,
            as_of=as_of,
            horizon_days=horizon_days,
            promote=promote,
            config=config,
            n_estimators=n_estimators,
            promote_if_better=promote_if_better,
            cluster=cluster,
        )

    _run(go)


@app.command()
def evaluate(
    data: Path = typer.Option(..., "--data", help="claims history directory or claims store"),
    since: Optional[str] = typer.Option(
        None, "--since", help=_SINCE.replace("the first date of the data", "the start of the model's latest window")
    ),
    until: Optional[str] = typer.Option(None, "--until", help=_UNTIL),
    version: Optional[str] = typer.Option(None, "--version", help="model version (default: champion)"),
    cluster: ClusterOption = None,
) -> None:
    """Metrics of the champion on claims submitted in the window (with the oracle when present)."""

    def go():
        from training.evaluate import evaluate_cli

        evaluate_cli(data=data, since=since, until=until, version=version, cluster=cluster)

    _run(go)


@app.command()
def backtest(
    data: Path = typer.Option(
        ...,
        "--data",
        help="claims history directory (with oracle.csv: oracle figures too) or claims store",
    ),
    start: str = typer.Option(..., "--from", help="first origin (as-of date of training), YYYY-MM-DD"),
    end: str = typer.Option(..., "--to", help="last origin at most this date, YYYY-MM-DD"),
    step: str = typer.Option("3M", "--step", help="between origins: a number and D, W, M or Y (3M, 90D, 2W, 1Y)"),
    window: str = typer.Option(
        "6M", "--window", help="claims submitted this long after each origin are scored (3M, 182D, 1Y ...)"
    ),
    horizon_days: Optional[int] = typer.Option(
        None, "--horizon-days", min=1, max=3650, help="label horizon in days (default: the config's, 365)"
    ),
    config: Optional[Path] = typer.Option(None, "--config", help="training config (YAML)"),
    n_estimators: Optional[int] = typer.Option(
        None, "--n-estimators", min=1, max=100_000, help="cap on the trees of each model (overrides the config)"
    ),
    out: Optional[Path] = typer.Option(
        None, "--out", help="folder for backtest.json/.md/.png/.html (default: RECOUP_HOME/backtest)"
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help=_OVERWRITE_DIR),
) -> None:
    """Rolling-origin forward evaluation: train as of each origin, score the next window, compare with outcomes."""

    def go():
        from training.backtest import backtest_cli

        backtest_cli(
            data=data,
            start=start,
            end=end,
            step=step,
            window=window,
            horizon_days=horizon_days,
            config=config,
            n_estimators=n_estimators,
            out=out,
            overwrite=overwrite,
        )

    _run(go)


@app.command()
def monitor(
    data: Path = typer.Option(..., "--data", help="claims history directory or claims store (up to now)"),
    version: Optional[str] = typer.Option(None, "--version", help="model version (default: champion)"),
    since: Optional[str] = typer.Option(
        None, "--since", help="first submission date of the window, YYYY-MM-DD (default: the day after the as-of date)"
    ),
    until: Optional[str] = typer.Option(
        None, "--until", help="last submission date of the window, YYYY-MM-DD (default: the data's last date)"
    ),
    reference: str = typer.Option(
        "train",
        "--reference",
        help="the model's slice to compare with: train (what it learned from) or test (its latest window)",
    ),
    out: Optional[Path] = typer.Option(
        None, "--out", help="folder for report.html, summary.json and CSVs (default: RECOUP_HOME/monitor/AS-OF_UNTIL)"
    ),
    config: Optional[Path] = typer.Option(None, "--config", help="training config (YAML) with the monitor thresholds"),
    overwrite: bool = typer.Option(False, "--overwrite", help=_OVERWRITE_DIR),
) -> None:
    """Drift watch: feature, payer and score drift of the claims scored since training, calibration by payer;
    says whether a retrain is due (HTML report, JSON summary, MLflow experiment recoup-monitor)."""

    def go():
        from training.monitor import monitor_cli

        monitor_cli(
            data=data,
            version=version,
            since=since,
            until=until,
            out=out,
            config=config,
            overwrite=overwrite,
            reference=reference,
        )

    _run(go)


@app.command()
def score(
    data: Path = typer.Option(..., "--data", help="claims history directory or claims store"),
    out: Path = typer.Option(..., "--out", help="output .csv or .parquet"),
    since: Optional[str] = typer.Option(None, "--since", help=_SINCE),
    until: Optional[str] = typer.Option(None, "--until", help=_UNTIL),
    explain: str = typer.Option(
        "top:1000", "--explain", help="which rows get reasons: none, all, or top:N by dollars at risk"
    ),
    skip_invalid: bool = typer.Option(
        False, "--skip-invalid", help="score the valid claims and list the invalid ones as rejected"
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="replace --out even when it is not an earlier score output "
        "(an earlier output is replaced anyway; always atomically)",
    ),
    cluster: ClusterOption = None,
) -> None:
    """Score the claims submitted in the window, each with the history known on its submission date."""

    def go():
        from serving.batch import score_cli

        score_cli(
            data=data,
            out=out,
            since=since,
            until=until,
            explain=explain,
            skip_invalid=skip_invalid or None,
            overwrite=overwrite,
            **_cluster_kw(cluster),
        )

    _run(go)


@app.command()
def audit(
    data: Path = typer.Option(..., "--data", help="claims history directory or claims store"),
    out: Path = typer.Option(..., "--out", help="directory for worklist and report"),
    since: Optional[str] = typer.Option(None, "--since", help=_SINCE),
    until: Optional[str] = typer.Option(None, "--until", help=_UNTIL),
    capacity: Optional[int] = typer.Option(None, "--capacity", min=1, help="number of reviews"),
    budget_hours: Optional[float] = typer.Option(None, "--budget-hours", min=0.1, help="review budget in hours"),
    minutes_per_review: float = typer.Option(20.0, "--minutes-per-review", min=1.0),
    skip_invalid: bool = typer.Option(
        False, "--skip-invalid", help="audit the valid claims and list the invalid ones as rejected"
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help=_OVERWRITE_DIR),
    matured: bool = typer.Option(
        False,
        "--matured",
        help="audit the claims whose outcomes are known as of the data's last date, so the report has a backtest "
        "(instead of --since/--until)",
    ),
    cluster: ClusterOption = None,
) -> None:
    """Ranked review worklist by expected recoupment dollars, with an HTML report."""

    def go():
        from serving.audit import audit_cli

        audit_cli(
            data=data,
            out=out,
            since=since,
            until=until,
            capacity=capacity,
            budget_hours=budget_hours,
            minutes_per_review=minutes_per_review,
            skip_invalid=skip_invalid or None,
            overwrite=overwrite,
            matured=matured,
            **_cluster_kw(cluster),
        )

    _run(go)


@app.command()
def serve(
    port: int = typer.Option(3000, "--port", min=1, max=65535, help="TCP port to listen on (1-65535)"),
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        help="address to listen on; anything but loopback (e.g. 0.0.0.0 = all "
        "interfaces) requires an API key (recoup keys create NAME)",
    ),
    workers: int = typer.Option(
        None,
        "--workers",
        min=1,
        help="worker processes (default RECOUP_SERVICE_WORKERS or 1); several "
        "share the claims they record (docs/service.md)",
    ),
    allowed_host: Optional[List[str]] = typer.Option(
        None,
        "--allowed-host",
        help="a Host header name clients may use, besides the loopback names (repeatable; also "
        "RECOUP_ALLOWED_HOSTS, comma-separated; '*' = any); needed with --host 0.0.0.0",
    ),
    ssl_certfile: Optional[Path] = typer.Option(
        None, "--ssl-certfile", help="TLS certificate (PEM): serve HTTPS (with --ssl-keyfile)"
    ),
    ssl_keyfile: Optional[Path] = typer.Option(None, "--ssl-keyfile", help="TLS private key (PEM) of --ssl-certfile"),
    refresh_from: Optional[Path] = typer.Option(
        None,
        "--refresh-from",
        help="a claims history folder (the data contract) whose claims and recoupments dated after the "
        "model's as-of date and up to today join the service's state on a schedule and on POST /refresh",
    ),
    refresh_every: Optional[str] = typer.Option(
        None,
        "--refresh-every",
        help="how often to refresh from --refresh-from: 1m to 1d, e.g. 15m, 2h, 1d (default 15m)",
    ),
) -> None:
    """Start the BentoML scoring service with the champion and its history state."""

    def go():
        from serving.serve import serve_cli

        serve_cli(
            port=port,
            host=host,
            workers=workers,
            allowed_hosts=allowed_host,
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
            refresh_from=refresh_from,
            refresh_every=refresh_every,
        )

    _run(go)


@app.command()
def demo(
    claims: int = typer.Option(60_000, "--claims", min=1000, help="claims in the synthetic history"),
    seed: int = typer.Option(7, "--seed", help="random seed (same seed, same data)"),
    serve_after: bool = typer.Option(True, "--serve/--no-serve", help="start the service at the end"),
    port: int = typer.Option(3000, "--port", min=1, max=65535, help="TCP port of the service (1-65535)"),
) -> None:
    """The embedded default end to end: generate, train, promote, audit, serve."""

    def go():
        from recoup.demo import run_demo

        run_demo(claims=claims, seed=seed, serve_after=serve_after, port=port)

    _run(go)


keys_app = typer.Typer(no_args_is_help=True, help="API keys of the scoring service (docs/service.md, Security).")
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def keys_create(
    name: str = typer.Argument(..., help="who or what uses the key (letters, digits, . _ -), shown in the access log"),
) -> None:
    """Create a key and print it once (only its SHA-256 is stored; a running service picks it up)."""

    def go():
        from serving.security import keys_create_cli

        keys_create_cli(name)

    _run(go)


@keys_app.command("list")
def keys_list() -> None:
    """The keys: name, first characters, created, revoked (never a key or its hash)."""

    def go():
        from serving.security import keys_list_cli

        keys_list_cli()

    _run(go)


@keys_app.command("revoke")
def keys_revoke(
    name: str = typer.Argument(..., help="name of the active key to revoke"),
) -> None:
    """Revoke a key: a running service refuses it within a second, no restart needed."""

    def go():
        from serving.security import keys_revoke_cli

        keys_revoke_cli(name)

    _run(go)


workbench_app = typer.Typer(
    help="The audit workbench (docs/workbench.md): `recoup workbench --data STORE` serves it; "
    "`recoup workbench user add NAME --role lead` creates a user.",
)
app.add_typer(workbench_app, name="workbench")
workbench_user_app = typer.Typer(no_args_is_help=True, help="Users of the workbench.")
workbench_app.add_typer(workbench_user_app, name="user")


class WorkbenchRole(str, Enum):
    reviewer = "reviewer"
    lead = "lead"


@workbench_app.callback(invoke_without_command=True)
def workbench(
    ctx: typer.Context,
    data: Optional[Path] = typer.Option(None, "--data", help="the claims store (claim details, where outcomes go)"),
    port: int = typer.Option(8080, "--port", min=1, max=65535, help="TCP port to listen on (1-65535)"),
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on (put HTTPS in front off loopback)"),
    audit: Optional[Path] = typer.Option(
        None,
        "--audit",
        help="a `recoup audit` output folder to load (default: the newest one under RECOUP_HOME)",
    ),
    allowed_host: Optional[List[str]] = typer.Option(
        None, "--allowed-host", help="a Host header name browsers may use besides the loopback names (repeatable)"
    ),
) -> None:
    """Serve the audit workbench: worklist, claims, providers, review outcomes, dashboard, export.
    Database: RECOUP_DATABASE_URL, else SQLite in RECOUP_HOME."""
    if ctx.invoked_subcommand is not None:
        return

    def go():
        from serving.workbench.cli import workbench_cli

        if data is None:
            raise RecoupError("--data STORE is required to serve the workbench")
        workbench_cli(data=data, port=port, host=host, audit=audit, allowed_hosts=allowed_host)

    _run(go)


@workbench_app.command("migrate")
def workbench_migrate() -> None:
    """Bring the workbench database to the latest schema (also done at every start)."""

    def go():
        from serving.workbench.cli import migrate_cli

        migrate_cli()

    _run(go)


@workbench_user_app.command("add")
def workbench_user_add(
    name: str = typer.Argument(..., help="the user's login name (letters, digits, . _ -)"),
    role: WorkbenchRole = typer.Option(..., "--role", help="lead (assigns, sees everyone's work) or reviewer"),
) -> None:
    """Create a user; the password from RECOUP_WORKBENCH_PASSWORD, else asked (hidden, twice)."""

    def go():
        from serving.workbench.cli import user_add_cli

        user_add_cli(name, role.value)

    _run(go)


@app.command("rebuild-rulebook")
def rebuild_rulebook(
    reference: Path = typer.Option(..., "--reference", help="folder with the raw CMS tables"),
    out: Optional[Path] = typer.Option(None, "--out", help="default: the packaged rulebook folder"),
) -> None:
    """Rebuild the packaged rulebook from raw CMS tables (drop in a newer quarter)."""

    def go():
        from features.rulebook import build

        argv = ["--reference", str(reference)] + (["--out", str(out)] if out else [])
        build.main(argv)

    _run(go)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
