// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// HubOptions change the hub's configuration from tests/support/hub_proc.c's.
type HubOptions struct {
	RingCapacity string   // "" = 4M, as the C tests
	Extra        []string // extra flags, last so they win ("--reader-timeout-min-ms=1")
}

// Hub is a running topohubd. Fields are read-only.
type Hub struct {
	Dir    string
	Socket string // the control socket
	Config string
	Log    string // the hub's stderr

	bin    string
	args   []string
	notify *net.UnixConn
	cmd    *exec.Cmd
	exited chan struct{}
}

// BuildDir is where topohubd is: $TOPOHUB_BUILD, else the repository's build/
// (two folders above the module root plugins/go).
func BuildDir() string {
	if b := os.Getenv("TOPOHUB_BUILD"); b != "" {
		return b
	}
	dir, _ := os.Getwd()
	for d := dir; d != "/" && d != "."; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, "..", "..", "build")
		}
	}
	return "build"
}

// StartHub starts build/topohubd on db (by its Unix socket) with a private
// socket and password file, waits for its READY=1 (sd_notify), and stops it
// when the test ends. It skips the test when topohubd is not built.
func StartHub(t testing.TB, db *MariaDB, o HubOptions) *Hub {
	t.Helper()
	bin, _ := filepath.Abs(filepath.Join(BuildDir(), "topohubd"))
	if st, err := os.Stat(bin); err != nil || st.Mode()&0o111 == 0 {
		t.Skipf("testenv: %s is not built (make in the repository, or set TOPOHUB_BUILD)", bin)
	}
	removeStale("topohub-go-hub-")
	h := &Hub{Dir: makeTempDir(t, "topohub-go-hub-"), bin: bin}
	t.Cleanup(h.free)
	h.Socket = filepath.Join(h.Dir, "hub.sock")
	h.Config = filepath.Join(h.Dir, "topohubd.ini")
	h.Log = filepath.Join(h.Dir, "topohubd.log")
	pwfile := filepath.Join(h.Dir, "password")
	if err := os.WriteFile(pwfile, []byte(db.Password+"\n"), 0o600); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	ring := o.RingCapacity
	if ring == "" {
		ring = "4M"
	}
	cfg := fmt.Sprintf("; written by plugins/go/internal/testenv\n[hub]\nsocket = %s\nsocket_mode = 0666\n"+
		"ring_capacity = %s\nlog_level = info\nmonitor_realtime = false\n\n[mysql]\nuser = %s\nsources = %s\n"+
		"password_file = %s\nheartbeat_ms = 500\nreconnect_min_ms = 20\nreconnect_max_ms = 500\n"+
		"connect_timeout_ms = 2000\n", h.Socket, ring, db.User, db.Socket, pwfile)
	if err := os.WriteFile(h.Config, []byte(cfg), 0o600); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	notifyPath := filepath.Join(h.Dir, "notify.sock")
	nc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		t.Fatalf("testenv: notify socket: %v", err)
	}
	h.notify = nc
	h.args = append([]string{"--config", h.Config}, o.Extra...)
	if err := h.launch(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return h
}

func (h *Hub) launch() error {
	logf, err := os.OpenFile(h.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(h.bin, h.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+filepath.Join(h.Dir, "notify.sock"))
	cmd.SysProcAttr = killWithParent()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("cannot start %s: %w", h.bin, err)
	}
	h.cmd = cmd
	h.exited = make(chan struct{})
	go func(ch chan struct{}) { cmd.Wait(); close(ch) }(h.exited)
	buf := make([]byte, 512)
	for time.Since(start) < 30*time.Second {
		h.notify.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if n, err := h.notify.Read(buf); err == nil && strings.Contains(string(buf[:n]), "READY=1") {
			return nil
		}
		select {
		case <-h.exited:
			h.cmd = nil
			return fmt.Errorf("topohubd exited before READY (%v): ...%s", cmd.ProcessState, tail(h.Log, 600))
		default:
		}
	}
	return fmt.Errorf("topohubd not READY within 30 s: ...%s", tail(h.Log, 600))
}

// PID of the running hub, 0 when not running.
func (h *Hub) PID() int {
	if h.cmd == nil {
		return 0
	}
	return h.cmd.Process.Pid
}

// Kill sends SIGKILL and reaps the hub (a crash: the ring is not closed).
func (h *Hub) Kill() {
	if h.cmd != nil {
		h.cmd.Process.Signal(syscall.SIGKILL)
		<-h.exited
		h.cmd = nil
	}
}

// Stop is the operator's SIGTERM (the hub closes its ring); SIGKILL after 10 s.
func (h *Hub) Stop() {
	if h.cmd == nil {
		return
	}
	h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.exited:
	case <-time.After(10 * time.Second):
		h.cmd.Process.Signal(syscall.SIGKILL)
		<-h.exited
	}
	h.cmd = nil
}

// Restart starts the same configuration again (after Kill or Stop): a new
// ring generation on the same socket.
func (h *Hub) Restart(t testing.TB) {
	t.Helper()
	if h.cmd != nil {
		t.Fatalf("testenv: the hub is still running")
	}
	if err := h.launch(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// LogTail is the last n bytes of the hub's log, for failure messages.
func (h *Hub) LogTail(n int) string { return tail(h.Log, n) }

func (h *Hub) free() {
	h.Kill()
	if h.notify != nil {
		h.notify.Close()
	}
	if os.Getenv("TH_HUB_KEEP") != "1" {
		os.RemoveAll(h.Dir)
	}
}

// Env is a MariaDB with the topo schema and a hub on it: what most tests need.
type Env struct {
	DB  *MariaDB
	Hub *Hub
}

// Start starts both (skipping when either is missing).
func Start(t testing.TB, o HubOptions) *Env {
	t.Helper()
	db := StartMariaDB(t)
	db.CreateTopoSchema(t)
	return &Env{DB: db, Hub: StartHub(t, db, o)}
}
