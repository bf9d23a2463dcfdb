// SPDX-License-Identifier: Apache-2.0

package topohubtopo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"sync/atomic"
	"testing"
	"time"

	topodatapb "vitess.io/vitess/go/vt/proto/topodata"
	"vitess.io/vitess/go/vt/topo"
	"vitess.io/vitess/go/vt/topo/test"

	"github.com/topohub/topohub/plugins/go/internal/testenv"
)

// testDB is the database and hub the tests run against.
type testDB struct {
	env  *testenv.Env
	addr string // server address as a cell's ServerAddress
	cfg  Config
}

var rootSeq atomic.Int64

// openTestDB starts a private MariaDB with the topo schema and a real
// topohubd on it (testenv; the test skips with the reason when a binary is
// missing), and an account that may write the topo tables (testenv's own
// account only reads).
func openTestDB(t *testing.T) *testDB {
	t.Helper()
	env := testenv.Start(t, testenv.HubOptions{})
	var pw [12]byte
	rand.Read(pw[:])
	password := hex.EncodeToString(pw[:])
	env.DB.MustExec(t, "CREATE USER 'vt'@'%' IDENTIFIED BY '"+password+"'; GRANT ALL ON topo.* TO 'vt'@'%'")
	return &testDB{env: env, addr: fmt.Sprintf("%s:%d/topo", env.DB.Host, env.DB.Port), cfg: Config{
		User:         "vt",
		Password:     password,
		Socket:       env.Hub.Socket,
		LockTTL:      10 * time.Second, // renewals must survive a loaded test machine
		ElectionTTL:  6 * time.Second,
		PollInterval: 500 * time.Millisecond,
		SyncTimeout:  10 * time.Second,
		// Watch with the hub down waits this long for an initial value.
		InitialTimeout: 3 * time.Second,
	}}
}

// useConfig makes the Factory (which reads the flags) use db's settings.
func (db *testDB) useConfig(t *testing.T) {
	saved := [...]any{flagUser, flagPasswordFile, flagSocket, flagLockTTL, flagElectionTTL}
	flagUser, flagSocket = db.cfg.User, db.cfg.Socket
	flagLockTTL, flagElectionTTL = db.cfg.LockTTL, db.cfg.ElectionTTL
	flagPasswordFile = ""
	os.Setenv("TOPOHUB_MYSQL_PASSWORD", db.cfg.Password)
	t.Cleanup(func() {
		flagUser, flagPasswordFile, flagSocket = saved[0].(string), saved[1].(string), saved[2].(string)
		flagLockTTL, flagElectionTTL = saved[3].(time.Duration), saved[4].(time.Duration)
		os.Unsetenv("TOPOHUB_MYSQL_PASSWORD")
	})
}

// newTopoServer opens a topo.Server through the registered factory on a
// fresh root, with the local cell test.LocalCellName beside the global one.
func (db *testDB) newTopoServer(t *testing.T) *topo.Server {
	t.Helper()
	root := fmt.Sprintf("/t%d-%d", time.Now().UnixNano(), rootSeq.Add(1))
	ts, err := topo.OpenServer("topohub", db.addr, path.Join(root, topo.GlobalCell))
	if err != nil {
		t.Fatalf("OpenServer: %v", err)
	}
	if err := ts.CreateCellInfo(context.Background(), test.LocalCellName, &topodatapb.CellInfo{
		ServerAddress: db.addr,
		Root:          path.Join(root, test.LocalCellName),
	}); err != nil {
		t.Fatalf("CreateCellInfo: %v", err)
	}
	return ts
}

func (db *testDB) newServer(t *testing.T) *Server {
	t.Helper()
	root := fmt.Sprintf("/t%d-%d", time.Now().UnixNano(), rootSeq.Add(1))
	s, err := NewServer(db.addr, root, db.cfg)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// TestTopoServerTestSuite runs Vitess's own backend conformance suite, every
// sub-test of it: the ignore list is empty, nothing is skipped.
func TestTopoServerTestSuite(t *testing.T) {
	db := openTestDB(t)
	db.useConfig(t)
	test.TopoServerTestSuite(t, t.Context(), func() *topo.Server { return db.newTopoServer(t) }, nil)
}
