"""A throwaway single-node SLURM cluster on localhost, for tests that submit through submitit (``launcher: slurm``).

Debian's packages (``.ci/install-slurm``: slurm-wlm, munge, and for ``sacct`` slurmdbd with mariadb-server) give
the daemons; :class:`SlurmCluster` starts them as root in a fresh temporary folder and stops them afterwards:

- ``munged`` with its own key and socket (the system's ``/etc/munge`` and ``/run/munge`` are not used);
- when ``mariadbd`` and ``slurmdbd`` are installed: a MariaDB on a unix socket only and ``slurmdbd``, so that
  ``sacct`` (which submitit polls for job states) answers; without them the cluster has no accounting, submitit
  warns "Bypassing sacct error" and learns of a task's end only from its result file;
- ``slurmctld`` and ``slurmd`` for one node (this host's short name, all its CPUs) in one partition ``debug``,
  with proctrack/linuxproc and task/none (no cgroups, no systemd), ``JobRequeue=1`` and ``cred_expire=5`` so a
  requeued job starts again after about 6 s instead of Slurm's default 121 s.

All daemons listen on free ports of this machine, so two clusters (two test sessions) do not collide. A client
finds the cluster through one environment variable, ``SLURM_CONF`` (:attr:`SlurmCluster.env`); jobs inherit it
from ``sbatch``, so ``scontrol requeue`` inside a job (submitit's ``Checkpointable``) reaches the same cluster.

In a test, through the fixtures of ``tests/conftest.py`` (``slurm_cluster`` for the session, ``slurm_env``)::

    @pytest.mark.slow
    def test_study_on_slurm(slurm_env, tmp_path):   # slurm_env: SLURM_CONF set for this test
        ...  # launcher: slurm, slurm: {cluster: slurm}

Outside pytest: ``with SlurmCluster() as cluster: subprocess.run(["sinfo"], env={**os.environ, **cluster.env})``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

DAEMONS = ("munged", "slurmctld", "slurmd")
ACCOUNTING_DAEMONS = ("mariadb-install-db", "mariadbd", "slurmdbd")
PARTITION = "debug"
INSTALL_HINT = "run `.ci/install-slurm` as root (apt-get install slurm-wlm munge slurmdbd mariadb-server)"


def missing_reason() -> str | None:
    """Why no cluster can be started here (not root, a daemon not installed), or None when one can."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "a throwaway SLURM cluster needs root (slurmd launches jobs as root)"
    absent = [name for name in DAEMONS if _which(name) is None]
    if absent:
        return f"SLURM is not installed ({', '.join(absent)} not found): {INSTALL_HINT}"
    return None


def _which(name: str) -> str | None:
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SlurmCluster:
    """One ``slurmctld`` + ``slurmd`` (+ ``munged``, and ``slurmdbd`` on MariaDB when installed) under a temp folder.

    Args:
        accounting: Start MariaDB and ``slurmdbd`` so ``sacct`` works (None: when both are installed).
        keep: Keep the folder (configs, daemon logs, job output) after :meth:`stop`; it is always kept when
            start-up fails, and its path is in the error.
        timeout_s: How long start-up may take before it fails.
    """

    def __init__(self, accounting: bool | None = None, keep: bool = False, timeout_s: float = 60.0) -> None:
        if accounting is None:
            accounting = all(_which(name) for name in ACCOUNTING_DAEMONS)
        self.accounting = accounting
        self.keep = keep
        self.timeout_s = timeout_s
        self.partition = PARTITION
        self.node = socket.gethostname().split(".")[0]
        self.root: Path | None = None
        self.start_seconds: float | None = None
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self.leftovers_killed: list[str] = []

    # ---- what a client needs

    @property
    def conf(self) -> Path:
        assert self.root is not None, "the cluster is not started"
        return self.root / "etc" / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        """The environment variables a client (sbatch, squeue, sacct, scontrol, submitit) needs: SLURM_CONF."""
        return {"SLURM_CONF": str(self.conf)}

    def command(self, *args: str, check: bool = True, timeout: float = 30) -> str:
        """Run a Slurm client command (``sinfo``, ``squeue``, ``scontrol`` ...) on this cluster; its stdout."""
        process = subprocess.run(
            list(args), env={**os.environ, **self.env}, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and process.returncode:
            raise RuntimeError(f"{' '.join(args)} exited with {process.returncode}: {process.stderr.strip()}")
        return process.stdout

    def job_field(self, job_id: str, field: str) -> str | None:
        """One field of ``scontrol show job`` (``JobState``, ``Restarts`` ...), or None for an unknown job."""
        out = self.command("scontrol", "show", "job", "-o", job_id, check=False)
        for token in out.split():
            key, _, value = token.partition("=")
            if key == field:
                return value
        return None

    # ---- start / stop

    def __enter__(self) -> SlurmCluster:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self) -> SlurmCluster:
        reason = missing_reason()
        if reason:
            raise RuntimeError(reason)
        started = time.monotonic()
        self.root = Path(tempfile.mkdtemp(prefix="slurm-cluster-", dir="/tmp" if os.path.isdir("/tmp") else None))
        self.root.chmod(0o755)  # munged wants its socket's folder reachable by all
        for sub, mode in (
            ("etc", 0o755),
            ("run", 0o755),
            ("log", 0o755),
            ("state", 0o700),
            ("spool", 0o755),
            ("munge", 0o700),
            ("db", 0o700),
        ):
            (self.root / sub).mkdir(mode=mode)
        try:
            self._start_munge()
            if self.accounting:
                self._start_accounting()
            self._write_slurm_conf()
            self._spawn("slurmctld", [_which("slurmctld") or "slurmctld", "-D", "-f", str(self.conf)])
            self._wait("slurmctld", lambda: self.command("scontrol", "ping", check=False).count("UP") > 0)
            self._spawn("slurmd", [_which("slurmd") or "slurmd", "-D", "-f", str(self.conf), "-N", self.node])
            self._wait(
                "slurmd",
                lambda: self.command("sinfo", "-h", "-n", self.node, "-o", "%T", check=False).strip() == "idle",
            )
        except BaseException:
            self.keep = True
            self.stop()
            raise
        self.start_seconds = time.monotonic() - started
        return self

    def stop(self) -> None:
        """Cancel every job, stop the daemons, end any process of this cluster still running, remove the folder."""
        if self.root is None:
            return
        if "slurmctld" in self._processes and self._processes["slurmctld"].poll() is None:
            self.command("scancel", f"--partition={self.partition}", check=False)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and self.command("squeue", "-h", "-o", "%i", check=False).strip():
                time.sleep(0.5)
        for name in ("slurmd", "slurmctld", "slurmdbd", "mariadbd", "munged"):
            process = self._processes.get(name)
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
        self._processes.clear()
        self._kill_leftovers()
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def _kill_leftovers(self) -> None:
        """SIGKILL processes of this cluster that outlived their daemons (slurmstepd, job steps).

        They are told apart by their environment: the daemons were started with this cluster's SLURM_CONF,
        slurmstepd inherits slurmd's, and jobs inherit the submitter's, so no other process is touched.
        """
        marker = f"SLURM_CONF={self.conf}".encode()
        me = os.getpid()
        self.leftovers_killed: list[str] = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == me:
                continue
            try:
                environ = (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if marker in environ:
                try:
                    command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                    os.kill(int(entry.name), signal.SIGKILL)
                except (OSError, ProcessLookupError):
                    continue
                self.leftovers_killed.append(f"{entry.name} {command.strip()}")

    # ---- the daemons

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        assert self.root is not None
        log = (self.root / "log" / f"{name}.stdout").open("wb")
        self._processes[name] = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **self.env, **(env or {})},
            cwd=self.root,
        )
        log.close()

    def _wait(self, name: str, ready: Any) -> None:
        assert self.root is not None
        deadline = time.monotonic() + self.timeout_s
        while True:
            process = self._processes.get(name)
            if process is not None and process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with status {process.returncode} during start-up\n{self._logs(name)}"
                )
            try:
                if ready():
                    return
            except (OSError, subprocess.SubprocessError, RuntimeError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not ready after {self.timeout_s:.0f} s\n{self._logs(name)}")
            time.sleep(0.2)

    def _logs(self, name: str) -> str:
        assert self.root is not None
        parts = [f"(cluster folder kept: {self.root})"]
        for path in sorted((self.root / "log").glob(f"{name}*")) + sorted((self.root / "munge").glob("*.log")):
            lines = path.read_text(errors="replace").splitlines()[-15:]
            parts.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(parts)

    def _start_munge(self) -> None:
        assert self.root is not None
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self.munge_socket = self.root / "run" / "munge.sock"
        self._spawn(
            "munged",
            [
                _which("munged") or "munged",
                "--foreground",
                f"--key-file={key}",
                f"--socket={self.munge_socket}",
                f"--pid-file={self.root / 'run' / 'munged.pid'}",
                f"--log-file={self.root / 'munge' / 'munged.log'}",
                f"--seed-file={self.root / 'munge' / 'munged.seed'}",
            ],
        )

        def munge_works() -> bool:
            cred = subprocess.run(["munge", "-n", "-S", str(self.munge_socket)], capture_output=True, timeout=10)
            return (
                cred.returncode == 0
                and subprocess.run(
                    ["unmunge", "-S", str(self.munge_socket)], input=cred.stdout, capture_output=True, timeout=10
                ).returncode
                == 0
            )

        self._wait("munged", munge_works)

    def _start_accounting(self) -> None:
        assert self.root is not None
        data = self.root / "db" / "data"
        self.mysql_socket = self.root / "run" / "mysql.sock"
        small = ["--innodb-log-file-size=4M", "--innodb-buffer-pool-size=16M"]
        init = subprocess.run(
            [
                _which("mariadb-install-db") or "mariadb-install-db",
                "--no-defaults",
                "--user=root",
                f"--datadir={data}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
                *small,
            ],
            capture_output=True,
            text=True,
            timeout=self.timeout_s,
            check=False,
        )
        (self.root / "log" / "mariadb-install-db.log").write_text(init.stdout + init.stderr)
        if init.returncode:
            raise RuntimeError(f"mariadb-install-db exited with {init.returncode}\n{self._logs('mariadb')}")
        self._spawn(
            "mariadbd",
            [
                _which("mariadbd") or "mariadbd",
                "--no-defaults",
                "--user=root",
                f"--datadir={data}",
                f"--socket={self.mysql_socket}",
                "--skip-networking",
                f"--pid-file={self.root / 'run' / 'mariadbd.pid'}",
                f"--log-error={self.root / 'log' / 'mariadbd.log'}",
                *small,
            ],
        )
        self._wait(
            "mariadbd",
            lambda: (
                subprocess.run(
                    ["mariadb", "--no-defaults", "-S", str(self.mysql_socket), "-uroot", "-e", "select 1"],
                    capture_output=True,
                    timeout=10,
                ).returncode
                == 0
            ),
        )
        self.dbd_port = _free_port()
        dbd_conf = self.root / "etc" / "slurmdbd.conf"  # slurmdbd reads it from SLURM_CONF's folder
        dbd_conf.write_text(
            "\n".join(
                [
                    "AuthType=auth/munge",
                    f"AuthInfo=socket={self.munge_socket}",
                    "DbdHost=localhost",
                    "DbdAddr=127.0.0.1",
                    f"DbdPort={self.dbd_port}",
                    "SlurmUser=root",
                    f"LogFile={self.root / 'log' / 'slurmdbd.log'}",
                    f"PidFile={self.root / 'run' / 'slurmdbd.pid'}",
                    "StorageType=accounting_storage/mysql",
                    "StorageHost=localhost",  # through MYSQL_UNIX_PORT, the socket above
                    "StorageUser=root",
                    "StorageLoc=slurm_acct_db",
                ]
            )
            + "\n"
        )
        dbd_conf.chmod(0o600)
        self._spawn(
            "slurmdbd", [_which("slurmdbd") or "slurmdbd", "-D"], env={"MYSQL_UNIX_PORT": str(self.mysql_socket)}
        )

        def dbd_listens() -> bool:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.settimeout(1)
                return probe.connect_ex(("127.0.0.1", self.dbd_port)) == 0

        self._wait("slurmdbd", dbd_listens)

    def _write_slurm_conf(self) -> None:
        assert self.root is not None
        cpus = os.cpu_count() or 1
        memory_mb = max(100, int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 * 0.9))
        lines = [
            "ClusterName=throwaway",
            f"SlurmctldHost={self.node}(127.0.0.1)",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            # cred_expire also sets how long a requeued job waits before it may start again (default 120 s)
            f"AuthInfo=socket={self.munge_socket},cred_expire=5",
            f"StateSaveLocation={self.root / 'state'}",
            f"SlurmdSpoolDir={self.root / 'spool'}",
            f"SlurmctldPidFile={self.root / 'run' / 'slurmctld.pid'}",
            f"SlurmdPidFile={self.root / 'run' / 'slurmd.pid'}",
            f"SlurmctldLogFile={self.root / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={self.root / 'log' / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "JobCompType=jobcomp/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "MpiDefault=none",
            "SwitchType=switch/none",
            "MailProg=/bin/true",
            "JobRequeue=1",
            "ReturnToService=2",
            "SchedulerType=sched/backfill",
            "SchedulerParameters=sched_interval=1,bf_interval=1",  # start jobs (and requeued ones) within ~1 s
            "MinJobAge=3600",  # finished jobs stay visible to scontrol/squeue
            "KillWait=5",
            "InactiveLimit=0",
            "SlurmctldTimeout=30",
            "SlurmdTimeout=30",
        ]
        if self.accounting:
            lines += [
                "AccountingStorageType=accounting_storage/slurmdbd",
                "AccountingStorageHost=localhost",
                f"AccountingStoragePort={self.dbd_port}",
                f"AccountingStoragePass={self.munge_socket}",  # the munge socket used to reach slurmdbd
            ]
        else:
            lines.append("AccountingStorageType=accounting_storage/none")
        lines += [
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN",
            f"PartitionName={self.partition} Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
        ]
        self.conf.write_text("\n".join(lines) + "\n")
