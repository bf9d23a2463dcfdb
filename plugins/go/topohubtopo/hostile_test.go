// SPDX-License-Identifier: Apache-2.0

package topohubtopo

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// These are tables of hostile inputs, not Fuzz targets: run-tests.sh fuzzes
// every Fuzz target, and this package's test binary carries all of Vitess,
// which takes minutes to build with fuzzing instrumentation on two cores.

// Whatever an operator types as a server address: an error or a
// configuration, never a panic, and never a schema name that needs quoting.
func TestParseServerAddr__hostile_input_is_an_error_or_a_safe_configuration(t *testing.T) {
	for _, addr := range []string{"db1", "db1:3306/topo", "[::1]:3306", "u:p@tcp(h:1)/s?tls=true",
		"unix(/s)/t", "(", ")", "@", "@(", "h:/x`y", "h:1/a.b", "h:1/a;DROP TABLE x", "h:99999999/a",
		"tcp(h:1)/a?timeout=zz", "tcp(h:1)/" + strings.Repeat("a", 65), "\x00", "h:1/\x00", "::::",
		"[::1", "h:1/topo/extra", "/", "//", "h:-1", "u@unix()/t", "tcp(h:1)/`x`", strings.Repeat("(", 1000)} {
		cfg, schema, err := parseServerAddr(addr, Config{User: "u"})
		if err != nil {
			continue
		}
		if cfg == nil || !schemaName.MatchString(schema) || strings.ContainsAny(schema, "`.;\x00") {
			t.Errorf("%q: accepted with schema %q", addr, schema)
		}
	}
}

// A GTID the server may print: ignored or recorded, never a panic, and the
// position is always one the tracker reads back the same.
func TestGTIDTracker__hostile_GTIDs_are_ignored_or_read_back(t *testing.T) {
	for _, g := range []string{"0-1-5", "18446744073709551615-1-1", "18446744073709551616-1-1", "-1-1",
		"0--1", "a-b-c", "", "0-1-5-6", " 0-1-5 ", "0-1-5,1-1-2", "+1-+2-+3", "00-01-02"} {
		tr := &gtidTracker{mariadb: map[uint64]mariaGTID{}}
		tr.addMariaDB(g)
		p := tr.position()
		if p == "" {
			continue
		}
		again := &gtidTracker{mariadb: map[uint64]mariaGTID{}}
		again.addMariaDB(p)
		if again.position() != p {
			t.Errorf("%q: position %q does not read back (%q)", g, p, again.position())
		}
	}
}

func TestFlags__are_registered_under_their_documented_names(t *testing.T) {
	saved := [...]any{flagUser, flagPasswordFile, flagSocket, flagLockTTL, flagElectionTTL}
	defer func() {
		flagUser, flagPasswordFile, flagSocket = saved[0].(string), saved[1].(string), saved[2].(string)
		flagLockTTL, flagElectionTTL = saved[3].(time.Duration), saved[4].(time.Duration)
	}()
	fs := pflag.NewFlagSet("vtgate", pflag.ContinueOnError)
	registerFlags(fs)
	if err := fs.Parse([]string{"--topo-topohub-mysql-user=vt", "--topo-topohub-mysql-password-file=/pw",
		"--topo-topohub-socket=/s.sock", "--topo-topohub-lock-ttl=7s", "--topo-topohub-election-ttl=4s"}); err != nil {
		t.Fatal(err)
	}
	if flagUser != "vt" || flagPasswordFile != "/pw" || flagSocket != "/s.sock" || flagLockTTL != 7*time.Second || flagElectionTTL != 4*time.Second {
		t.Fatalf("flags read as %q %q %q %v %v", flagUser, flagPasswordFile, flagSocket, flagLockTTL, flagElectionTTL)
	}
}
