# SPDX-License-Identifier: Apache-2.0
"""cluster.py: private MariaDB servers (a primary, GTID replicas) and topohubd
processes for the chaos harness. Test support, not product.

Servers run as the current user in a run folder, configured as
tests/support/mariadb.c configures them (log_bin, ROW, FULL images, CRC32,
gtid_strict_mode), plus log_slave_updates so that every server's binlog
holds the whole history (the checker reads them). Root connects over the
Unix socket without a password; the hubs use the `topohub` account.
"""

import os
import shutil
import signal
import socket
import subprocess
import time

import pymysql

INNODB_ARGS = [
    "--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M", "--innodb-log-buffer-size=2M",
    "--innodb-data-file-path=ibdata1:4M:autoextend", "--innodb-autoextend-increment=1",
    "--innodb-undo-tablespaces=0", "--performance-schema=OFF",
]

SCHEMA_SQL = [
    "CREATE DATABASE IF NOT EXISTS topo",
    "CREATE TABLE topo.topo_data (path VARCHAR(512) NOT NULL PRIMARY KEY, data MEDIUMBLOB, "
    "version BIGINT NOT NULL DEFAULT 1, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, "
    "modified_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP) ENGINE=InnoDB",
    "CREATE TABLE topo.topo_locks (path VARCHAR(512) NOT NULL PRIMARY KEY, contents TEXT, "
    "expires_at TIMESTAMP NOT NULL, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, "
    "INDEX expires_idx (expires_at)) ENGINE=InnoDB",
    "CREATE TABLE topo.topo_elections (name VARCHAR(512) NOT NULL PRIMARY KEY, leader_id VARCHAR(255) NOT NULL, "
    "contents TEXT, expires_at TIMESTAMP NOT NULL, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, "
    "modified_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP, "
    "INDEX expires_idx (expires_at)) ENGINE=InnoDB",
]

PASSWORD = "chaos-topohub-pw"


def _prog(name):
    for d in ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"):
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    return shutil.which(name)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def template(base):
    """A mariadb-install-db data folder, made once per user and kept."""
    t = os.path.join(base, "topohub-chaos-template-%d" % os.getuid())
    if os.path.exists(os.path.join(t, "ok")):
        return os.path.join(t, "data")
    shutil.rmtree(t, ignore_errors=True)
    os.makedirs(t)
    args = [_prog("mariadb-install-db"), "--no-defaults", "--datadir=" + os.path.join(t, "data"),
            "--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve"] + INNODB_ARGS
    if os.getuid() == 0:
        args.insert(2, "--user=root")
    with open(os.path.join(t, "install.log"), "w") as log:
        subprocess.run(args, stdout=log, stderr=subprocess.STDOUT, check=True, timeout=180)
    open(os.path.join(t, "ok"), "w").close()
    return os.path.join(t, "data")


class Server:
    def __init__(self, run_dir, name, server_id, tmpl):
        self.name = name
        self.server_id = server_id
        self.dir = os.path.join(run_dir, name)
        self.datadir = os.path.join(self.dir, "data")
        self.socket = os.path.join(self.dir, "mysqld.sock")
        self.port = free_port()
        self.log = os.path.join(self.dir, "error.log")
        self.binlog = os.path.join(self.datadir, "binlog")
        self.proc = None
        os.makedirs(self.dir)
        shutil.copytree(tmpl, self.datadir)

    def args(self):
        a = [_prog("mariadbd"), "--no-defaults", "--datadir=" + self.datadir, "--socket=" + self.socket,
             "--port=%d" % self.port, "--bind-address=127.0.0.1", "--pid-file=" + os.path.join(self.dir, "pid"),
             "--log-error=" + self.log, "--tmpdir=" + self.dir, "--server-id=%d" % self.server_id,
             "--log-bin=" + self.binlog, "--binlog-format=ROW", "--binlog-row-image=FULL",
             "--binlog-row-metadata=FULL", "--binlog-checksum=CRC32", "--gtid-strict-mode=ON",
             "--log-slave-updates=ON", "--skip-name-resolve", "--character-set-server=utf8mb4",
             "--collation-server=utf8mb4_general_ci", "--max-connections=100", "--table-open-cache=200",
             "--key-buffer-size=1M", "--aria-pagecache-buffer-size=1M", "--innodb-flush-log-at-trx-commit=2",
             "--sync-binlog=0", "--innodb-doublewrite=0", "--innodb-use-native-aio=0",
             "--innodb-temp-data-file-path=ibtmp1:1M:autoextend", "--innodb-buffer-pool-load-at-startup=0",
             "--innodb-buffer-pool-dump-at-shutdown=0", "--max-allowed-packet=64M", "--loose-feedback=OFF",
             "--relay-log=" + os.path.join(self.datadir, "relay"), "--relay-log-recovery=ON",
             "--slave-net-timeout=5", "--binlog-cache-size=1M"] + INNODB_ARGS
        if os.getuid() == 0:
            a.insert(2, "--user=root")
        return a

    def start(self, timeout=60):
        self.proc = subprocess.Popen(self.args(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited %s; see %s" % (self.name, self.proc.returncode, self.log))
            try:
                self.sql("SELECT 1")
                return
            except pymysql.err.OperationalError:
                time.sleep(0.1)
        raise RuntimeError("%s did not start in %ss" % (self.name, timeout))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        self.kill9()

    def connect(self, **kw):
        return pymysql.connect(unix_socket=self.socket, user="root", password="", autocommit=True,
                               connect_timeout=5, read_timeout=30, write_timeout=30, **kw)

    def sql(self, q, args=None, fetch=False):
        c = self.connect()
        try:
            with c.cursor() as cur:
                cur.execute(q, args)
                return cur.fetchall() if fetch else None
        finally:
            c.close()

    def value(self, q):
        r = self.sql(q, fetch=True)
        return r[0][0] if r else None

    def setup_accounts(self):
        c = self.connect()
        try:
            with c.cursor() as cur:
                for q in ("SET SESSION sql_log_bin = 0",
                          "CREATE USER IF NOT EXISTS 'topohub'@'%%' IDENTIFIED BY '%s'" % PASSWORD,
                          "GRANT REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR, SLAVE MONITOR, SELECT "
                          "ON *.* TO 'topohub'@'%'",
                          "CREATE USER IF NOT EXISTS 'repl'@'%' IDENTIFIED BY 'replpw'",
                          "GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%'"):
                    cur.execute(q)
        finally:
            c.close()

    def replicate_from(self, primary):
        self.sql("STOP SLAVE")
        self.sql("CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = %d, MASTER_USER = 'repl', "
                 "MASTER_PASSWORD = 'replpw', MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1"
                 % primary.port)
        self.sql("START SLAVE")
        self.sql("SET GLOBAL read_only = 1")

    def promote(self):
        self.sql("STOP SLAVE")
        self.sql("RESET SLAVE ALL")
        self.sql("SET GLOBAL read_only = 0")

    def gtid_pos(self):
        return self.value("SELECT @@gtid_binlog_pos") or ""

    def binlog_files(self):
        idx = self.binlog + ".index"
        out = []
        if os.path.exists(idx):
            for line in open(idx):
                line = line.strip()
                if line:
                    out.append(line if os.path.isabs(line) else os.path.join(self.datadir, os.path.basename(line)))
        return out


class Hub:
    """topohubd with its own config, socket and log; restartable."""

    def __init__(self, run_dir, name, build, sources, ring="1M", extra=""):
        self.name = name
        self.build = build
        self.dir = os.path.join(run_dir, name)
        os.makedirs(self.dir)
        self.socket = os.path.join(self.dir, "hub.sock")
        self.config = os.path.join(self.dir, "hub.conf")
        self.log = os.path.join(self.dir, "hub.log")
        self.proc = None
        self.starts = 0
        with open(self.config, "w") as f:
            f.write("[hub]\nsocket = %s\nsocket_mode = 0666\nring_capacity = %s\nlog_level = info\n"
                    "reader_timeout_min_ms = 10\nmonitor_realtime = false\n\n[mysql]\nuser = topohub\n"
                    "sources = %s\nheartbeat_ms = 500\nreconnect_min_ms = 20\nreconnect_max_ms = 500\n"
                    "connect_timeout_ms = 2000\n%s\n" % (self.socket, ring, ",".join(s.socket for s in sources),
                                                       extra))

    def start(self, timeout=60):
        env = dict(os.environ, TOPOHUB_MYSQL_PASSWORD=PASSWORD)
        notify = os.path.join(self.dir, "notify.sock")
        try:
            os.unlink(notify)
        except FileNotFoundError:
            pass
        ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        ns.bind(notify)
        env["NOTIFY_SOCKET"] = notify
        logf = open(self.log, "a")
        logf.write("==== start %d at %.3f\n" % (self.starts, time.time()))
        logf.flush()
        self.proc = subprocess.Popen([os.path.join(self.build, "topohubd"), "--config", self.config],
                                     stdout=logf, stderr=logf, env=env, start_new_session=True)
        logf.close()
        self.starts += 1
        ns.settimeout(0.2)
        end = time.time() + timeout
        try:
            while time.time() < end:
                try:
                    msg = ns.recv(4096)
                    if b"READY=1" in msg:
                        return
                except socket.timeout:
                    pass
                if self.proc.poll() is not None:
                    raise RuntimeError("%s exited %s; see %s" % (self.name, self.proc.returncode, self.log))
            raise RuntimeError("%s not ready in %ss" % (self.name, timeout))
        finally:
            ns.close()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.proc.pid, sig)

    def kill9(self):
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def term(self, timeout=15):
        if self.alive():
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
                return "timeout"
        return None

    def sanitizer_report(self):
        try:
            t = open(self.log, errors="replace").read()
        except OSError:
            return False
        return any(s in t for s in ("AddressSanitizer", "UndefinedBehaviorSanitizer", "ThreadSanitizer",
                                    "LeakSanitizer", "runtime error:"))
