"""A team's tracking stack, started for real: Debian's PostgreSQL, moto's S3 server and
`mlflow server` on them with proxied artifacts (the setup docs/team-server.md describes).

`make test` installs the pieces (apt's postgresql when root, `.[team]` and moto[server] from
PyPI); this module only starts and stops them. PostgreSQL refuses to run as root, so under root
its cluster belongs to the `postgres` user Debian's package creates.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from tests.mlflow_server import MlflowServer, free_port, server_env, stop_group, wait_http

BUCKET = "nbops-artifacts"
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
          "AWS_DEFAULT_REGION": "us-east-1"}


def pg_bin() -> Path | None:
    """The folder of PostgreSQL's server programs (Debian keeps them off PATH)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return versions[-1].parent if versions else None


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.getuid() == 0 else cmd


def _run(cmd: list[str], **kw) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr or proc.stdout}")


@dataclass
class Postgres:
    data: Path
    port: int
    bindir: Path

    @property
    def uri(self) -> str:
        return f"postgresql+psycopg2://nbops:nbops-pw@127.0.0.1:{self.port}/mlflow"

    def start(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        if os.getuid() == 0:
            shutil.chown(self.data, "postgres", "postgres")
            shutil.chown(self.data.parent, "postgres", "postgres")  # its log goes there
        pwfile = self.data.parent / "pw"
        pwfile.write_text("nbops-pw\n")
        if os.getuid() == 0:
            shutil.chown(pwfile, "postgres", "postgres")
        _run(_as_postgres([str(self.bindir / "initdb"), "-D", str(self.data), "-U", "nbops",
                                     "--pwfile", str(pwfile), "-A", "md5", "-E", "UTF8"]))
        # the socket folder is the cluster's own (Debian's default, /var/run/postgresql, needs root)
        _run(_as_postgres([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-w", "-l",
                                     str(self.data.parent / "postgres.log"), "-o",
                                     f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1",
                                     "start"]))
        env = dict(os.environ, PGPASSWORD="nbops-pw")
        _run([str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "nbops",
              "mlflow"], env=env)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(_as_postgres([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast",
                                         "stop"]), capture_output=True, text=True, check=False)


class TeamServer(MlflowServer):
    """`mlflow server` on PostgreSQL with its artifacts in S3 (served through it, so clients
    and kernels need only its URL); restartable."""

    def __init__(self, folder: Path, backend: str, s3_endpoint: str):
        super().__init__(folder, backend=backend, artifacts=f"s3://{BUCKET}/mlflow", workers=2,
                         env={"MLFLOW_S3_ENDPOINT_URL": s3_endpoint, **S3_ENV})
        self.s3_endpoint = s3_endpoint


def start_stack(stack: ExitStack, workdir: Path) -> TeamServer:
    """PostgreSQL, moto's S3 server with the artifact bucket, and `mlflow server` on both; each
    stopped when STACK closes."""
    bindir = pg_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed (make test installs Debian's postgresql)")
    workdir.mkdir(parents=True, exist_ok=True)
    # a folder of its own: the postgres user cannot enter pytest's (mode 0700) temp folders
    pgdir = Path(tempfile.mkdtemp(prefix="nbops-pg-"))
    os.chmod(pgdir, 0o755)
    stack.callback(shutil.rmtree, pgdir, True)
    pg = Postgres(pgdir / "data", free_port(), bindir)
    stack.callback(pg.stop)
    pg.start()

    s3_port = free_port()
    s3_log = workdir / "moto.log"
    with s3_log.open("ab") as log:
        moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(s3_port)],
                                env=server_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    stack.callback(stop_group, moto)
    endpoint = f"http://127.0.0.1:{s3_port}"
    wait_http(f"{endpoint}/moto-api/", moto, 60, s3_log)
    import boto3

    boto3.client("s3", endpoint_url=endpoint, **{k.lower(): v for k, v in S3_ENV.items()
                                                 if k != "AWS_DEFAULT_REGION"},
                 region_name="us-east-1").create_bucket(Bucket=BUCKET)

    server = TeamServer(workdir / "mlflow", pg.uri, endpoint)
    stack.callback(server.stop)
    server.start()
    return server
