// SPDX-License-Identifier: Apache-2.0

// Package testenv runs the real things the Go tests need: a private MariaDB
// server and the real topohubd, each in a temporary folder, configured as the
// C tests configure them (tests/support/mariadb.c, tests/support/hub_proc.c).
//
// Guarantees:
//   - A test skips, with the reason, when mariadbd, mariadb-install-db, the
//     mariadb client or topohubd is missing; it never passes in silence.
//   - Nothing outlives the test: every process is killed and its folder
//     removed in t.Cleanup, and each child has Pdeathsig SIGKILL, so a test
//     binary that dies takes its servers with it.
//   - mariadb-install-db runs once per user and server binary; its output is
//     a template under $TMPDIR copied for each instance.
//
// Caveats: Pdeathsig fires when the OS thread that forked exits; the Go
// runtime keeps its threads unless a goroutine exits while locked to one, so
// start servers from ordinary test goroutines. SQL goes through the mariadb
// command-line client as root on the Unix socket (no Go driver: the module
// has no dependencies). Test support, not product.
//
// Environment: TOPOHUB_BUILD (where topohubd is; default the repository's
// build/), TH_MARIADBD, TH_MARIADB_INSTALL_DB, TH_MARIADB_CLIENT override the
// binaries; TH_MARIADB_KEEP=1 / TH_HUB_KEEP=1 keep the folders.
package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// innodbArgs are shared by mariadb-install-db and the server: InnoDB refuses
// files made with other sizes (tests/support/mariadb.c, innodb_args).
var innodbArgs = []string{
	"--innodb-buffer-pool-size=16M",
	"--innodb-log-file-size=8M",
	"--innodb-log-buffer-size=2M",
	"--innodb-data-file-path=ibdata1:4M:autoextend",
	"--innodb-autoextend-increment=1",
	"--innodb-undo-tablespaces=0",
	"--performance-schema=OFF",
}

// MariaDB is a running private server. Fields are read-only.
type MariaDB struct {
	Dir      string // the temporary folder
	DataDir  string
	Socket   string // Unix socket
	Host     string // "127.0.0.1"
	Port     int
	User     string // "topohub", the account handed to the code under test
	Password string
	ErrorLog string

	bin    string
	client string
	args   []string
	cmd    *exec.Cmd
	exited chan struct{}
}

func findProgram(env, name string) (string, bool) {
	if e := os.Getenv(env); e != "" {
		if st, err := os.Stat(e); err == nil && st.Mode()&0o111 != 0 {
			return e, true
		}
		return e, false
	}
	for _, d := range []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"} {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p, true
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, true
	}
	return "", false
}

func tmpRoot() string {
	if d := os.Getenv("TMPDIR"); d != "" {
		return d
	}
	return "/tmp"
}

// killWithParent is every child's SysProcAttr: killed when the test dies.
func killWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// removeStale removes folders named prefix* whose owner.pid is a dead process
// (their servers died with them: Pdeathsig).
func removeStale(prefix string) {
	ents, _ := os.ReadDir(tmpRoot())
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), prefix) || strings.Contains(e.Name(), "template") {
			continue
		}
		dir := filepath.Join(tmpRoot(), e.Name())
		b, err := os.ReadFile(filepath.Join(dir, "owner.pid"))
		if err != nil {
			continue
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		if pid <= 0 || syscall.Kill(pid, 0) == nil || syscall.Kill(pid, 0) == syscall.EPERM {
			continue // alive, or not ours to judge
		}
		os.RemoveAll(dir)
	}
}

func makeTempDir(t testing.TB, prefix string) string {
	dir, err := os.MkdirTemp(tmpRoot(), prefix)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	// Written whole (rename): another test binary's removeStale never reads a half-written pid.
	tmp := filepath.Join(dir, ".owner.pid")
	os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600)
	os.Rename(tmp, filepath.Join(dir, "owner.pid"))
	return dir
}

// ensureTemplate makes (once, under a lock) the installed data dir that
// each instance copies.
func ensureTemplate(installDB, mariadbd string) (string, error) {
	h := fnv.New64a()
	fmt.Fprintf(h, "1|%s|", mariadbd)
	if st, err := os.Stat(mariadbd); err == nil {
		fmt.Fprintf(h, "%d|%d", st.Size(), st.ModTime().UnixNano())
	}
	for _, a := range innodbArgs {
		h.Write([]byte(a))
	}
	out := filepath.Join(tmpRoot(), fmt.Sprintf("topohub-go-mdb-template-%d-%016x", os.Getuid(), h.Sum64()))
	lock, err := os.OpenFile(filepath.Join(tmpRoot(), fmt.Sprintf("topohub-go-mdb-template-%d.lock", os.Getuid())),
		os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	for {
		err = syscall.Flock(int(lock.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(out, "ready")); err == nil {
		return out, nil
	}
	os.RemoveAll(out)
	build, err := os.MkdirTemp(tmpRoot(), "topohub-go-mdb-tbuild-")
	if err != nil {
		return "", err
	}
	args := []string{"--no-defaults"}
	if os.Getuid() == 0 {
		args = append(args, "--user=root")
	}
	args = append(args, "--datadir="+filepath.Join(build, "data"), "--auth-root-authentication-method=normal",
		"--skip-test-db", "--skip-name-resolve")
	args = append(args, innodbArgs...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, installDB, args...)
	cmd.SysProcAttr = killWithParent()
	if b, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(build)
		s := string(b)
		if len(s) > 400 {
			s = s[len(s)-400:]
		}
		return "", fmt.Errorf("%s failed: %v: ...%s", installDB, err, s)
	}
	os.WriteFile(filepath.Join(build, "ready"), nil, 0o600)
	if err := os.Rename(build, out); err != nil {
		os.RemoveAll(build)
		return "", err
	}
	return out, nil
}

func copyTree(from, to string) error {
	return filepath.Walk(from, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if info.IsDir() {
			return os.MkdirAll(dst, 0o700)
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, info.Mode().Perm())
	})
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// StartMariaDB starts a private server configured as topohub needs its
// source, with the `topohub` account and its grants (kept out of the
// binlog). It skips the test when the binaries are missing; it is stopped
// and its folder removed when the test ends.
func StartMariaDB(t testing.TB) *MariaDB {
	t.Helper()
	mariadbd, ok := findProgram("TH_MARIADBD", "mariadbd")
	if !ok {
		t.Skip("testenv: mariadbd is not installed (apt-get install mariadb-server, or set TH_MARIADBD)")
	}
	installDB, ok := findProgram("TH_MARIADB_INSTALL_DB", "mariadb-install-db")
	if !ok {
		t.Skip("testenv: mariadb-install-db is not installed (apt-get install mariadb-server, or set TH_MARIADB_INSTALL_DB)")
	}
	client, ok := findProgram("TH_MARIADB_CLIENT", "mariadb")
	if !ok {
		t.Skip("testenv: the mariadb client is not installed (apt-get install mariadb-client, or set TH_MARIADB_CLIENT)")
	}
	removeStale("topohub-go-mdb-")
	tmpl, err := ensureTemplate(installDB, mariadbd)
	if err != nil {
		t.Fatalf("testenv: MariaDB template: %v", err)
	}
	db := &MariaDB{Dir: makeTempDir(t, "topohub-go-mdb-"), Host: "127.0.0.1", User: "topohub", bin: mariadbd, client: client}
	t.Cleanup(db.stop)
	db.DataDir = filepath.Join(db.Dir, "data")
	db.Socket = filepath.Join(db.Dir, "mysqld.sock")
	db.ErrorLog = filepath.Join(db.Dir, "error.log")
	var pw [16]byte
	rand.Read(pw[:])
	db.Password = hex.EncodeToString(pw[:])
	if err := copyTree(filepath.Join(tmpl, "data"), db.DataDir); err != nil {
		t.Fatalf("testenv: copying the template: %v", err)
	}
	for attempt := 0; ; attempt++ {
		if db.Port, err = freePort(); err != nil {
			t.Fatalf("testenv: no free port: %v", err)
		}
		db.args = db.serverArgs()
		err = db.launch(30 * time.Second)
		if !errors.Is(err, syscall.EADDRINUSE) || attempt == 4 {
			break
		}
		os.Remove(db.Socket)
	}
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if _, err := db.Exec("SET SESSION sql_log_bin = 0;" +
		"CREATE USER 'topohub'@'%' IDENTIFIED BY '" + db.Password + "';" +
		"GRANT REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR, SLAVE MONITOR, SELECT ON *.* TO 'topohub'@'%';" +
		"SET SESSION sql_log_bin = 1"); err != nil {
		t.Fatalf("testenv: setting up the instance: %v", err)
	}
	return db
}

// serverArgs are tests/support/mariadb.c's launch() options.
func (db *MariaDB) serverArgs() []string {
	a := []string{"--no-defaults"}
	if os.Getuid() == 0 {
		a = append(a, "--user=root")
	}
	a = append(a,
		"--datadir="+db.DataDir, "--socket="+db.Socket, "--port="+strconv.Itoa(db.Port),
		"--bind-address=127.0.0.1", "--pid-file="+filepath.Join(db.Dir, "mariadbd.pid"),
		"--log-error="+db.ErrorLog, "--tmpdir="+db.Dir, "--server-id=1", "--gtid-domain-id=0",
		"--log-bin="+filepath.Join(db.DataDir, "binlog"),
		"--binlog-format=ROW", "--binlog-row-image=FULL", "--binlog-row-metadata=FULL",
		"--binlog-checksum=CRC32", "--gtid-strict-mode=ON", "--skip-name-resolve", "--skip-slave-start",
		"--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci", "--max-connections=64",
		"--open-files-limit=4096", "--table-open-cache=200", "--key-buffer-size=1M",
		"--aria-pagecache-buffer-size=1M", "--innodb-flush-log-at-trx-commit=2", "--sync-binlog=0",
		"--innodb-doublewrite=0", "--innodb-use-native-aio=0",
		"--innodb-temp-data-file-path=ibtmp1:1M:autoextend", "--innodb-buffer-pool-load-at-startup=0",
		"--innodb-buffer-pool-dump-at-shutdown=0", "--max-allowed-packet=64M", "--loose-feedback=OFF")
	return append(a, innodbArgs...)
}

func (db *MariaDB) launch(timeout time.Duration) error {
	logf, err := os.OpenFile(db.ErrorLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(db.bin, db.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = killWithParent()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("cannot start %s: %w", db.bin, err)
	}
	db.cmd = cmd
	db.exited = make(chan struct{})
	go func(ch chan struct{}) { cmd.Wait(); close(ch) }(db.exited)
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-db.exited:
			db.cmd = nil
			tl := tail(db.ErrorLog, 400)
			if strings.Contains(tl, "Address already in use") || strings.Contains(tl, "Can't start server: Bind") {
				return syscall.EADDRINUSE
			}
			return fmt.Errorf("mariadbd exited before accepting connections: ...%s", tl)
		default:
		}
		if _, err := os.Stat(db.Socket); err == nil {
			if _, err := db.Exec("SELECT 1"); err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mariadbd did not accept connections in time: ...%s", tail(db.ErrorLog, 400))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Exec runs SQL statements (';'-separated) as root on the Unix socket and
// returns the output rows, tab-separated, one per line, without headers.
func (db *MariaDB) Exec(sql string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, db.client, "--no-defaults", "-uroot", "--socket="+db.Socket,
		"--batch", "--skip-column-names", "--raw")
	cmd.Stdin = strings.NewReader(sql)
	cmd.SysProcAttr = killWithParent()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("mariadb: %v: %s (in: %.200s)", err, strings.TrimSpace(errb.String()), sql)
	}
	return out.String(), nil
}

// MustExec is Exec that fails the test on error.
func (db *MariaDB) MustExec(t testing.TB, sql string) string {
	t.Helper()
	out, err := db.Exec(sql)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return out
}

// GTID is the server's gtid_binlog_pos: what a Sync of "everything written so far" asks for.
func (db *MariaDB) GTID(t testing.TB) string {
	t.Helper()
	return strings.TrimSpace(db.MustExec(t, "SELECT @@global.gtid_binlog_pos"))
}

// TopoSchema creates the schema and the three mysqltopo tables exactly as
// th_mariadb_create_topo_schema (tests/support/mariadb.c) does.
const TopoSchema = "CREATE DATABASE IF NOT EXISTS `topo`;" +
	"CREATE TABLE `topo`.topo_data (path VARCHAR(512) NOT NULL PRIMARY KEY, data MEDIUMBLOB," +
	" version BIGINT NOT NULL DEFAULT 1, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP," +
	" modified_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP) ENGINE=InnoDB;" +
	"CREATE TABLE `topo`.topo_locks (path VARCHAR(512) NOT NULL PRIMARY KEY, contents TEXT," +
	" expires_at TIMESTAMP NOT NULL, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP," +
	" INDEX expires_idx (expires_at)) ENGINE=InnoDB;" +
	"CREATE TABLE `topo`.topo_elections (name VARCHAR(512) NOT NULL PRIMARY KEY," +
	" leader_id VARCHAR(255) NOT NULL, contents TEXT, expires_at TIMESTAMP NOT NULL," +
	" created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP," +
	" modified_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP," +
	" INDEX expires_idx (expires_at)) ENGINE=InnoDB"

// CreateTopoSchema runs TopoSchema (through root, so the DDL is in the binlog).
func (db *MariaDB) CreateTopoSchema(t testing.TB) {
	t.Helper()
	db.MustExec(t, TopoSchema)
}

// Signal sends sig to mariadbd (SIGSTOP, SIGCONT, SIGKILL).
func (db *MariaDB) Signal(sig syscall.Signal) error {
	if db.cmd == nil {
		return syscall.ESRCH
	}
	return db.cmd.Process.Signal(sig)
}

func (db *MariaDB) stop() {
	if db.cmd != nil {
		db.cmd.Process.Kill()
		<-db.exited
		db.cmd = nil
	}
	if os.Getenv("TH_MARIADB_KEEP") != "1" {
		os.RemoveAll(db.Dir)
	}
}
